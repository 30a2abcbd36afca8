"""Typed fields of a configuration made of frozen dataclass sections.

A value from outside (JSON, or `--set` text) is read as its field's type, within its range, or
refused with one sentence that names the field, the value and what is allowed. This module knows
no section and no range: `dpgan.config` builds one `TypedFields` from its section classes and its
range tables, so the tables stay beside the fields they describe.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import typing
from dataclasses import dataclass
from typing import Any

from dpgan.errors import DPGANError

_INT_TEXT = re.compile(r"^[+-]?\d{1,30}$")


def kind_of(value: Any) -> str:
    """What a JSON value is, in words ("an object", "a list", ...), for error messages."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def show(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class _FieldType:
    base: type  # bool, int, float or str
    optional: bool


def _field_types(cls: type) -> dict[str, _FieldType]:
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = bool(typing.get_args(hint)) and len(args) < len(typing.get_args(hint))
        out[name] = _FieldType(args[0] if optional else hint, optional)
    return out


def _from_text(raw: str, ft: _FieldType) -> Any:
    """A --set value (always text) as the field's type would have it in JSON."""
    if ft.optional and raw.strip().lower() in ("null", "none"):
        return None
    if ft.base is str:
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':  # a JSON string, quotes and all
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        return raw
    if ft.base is int and _INT_TEXT.match(raw.strip()):
        return int(raw)
    if ft.base is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw  # bool text is read by coerce; anything else is refused there, showing what was given


class TypedFields:
    """The fields of `sections` (section name -> dataclass) and the ranges of their numbers.

    `int_ranges` maps "section.field" to an inclusive (low, high); `float_ranges` to (low, high,
    low included, high included), and a float must also be finite. A number field not listed has
    `default_int` or `default_float`; a string has at most `max_string` characters. The tables
    are the caller's own (not copies), so what it lists is what is checked.
    """

    def __init__(self, sections: dict[str, type], *, int_ranges: dict[str, tuple[int, int]],
                 float_ranges: dict[str, tuple[float, float, bool, bool]], default_int: tuple[int, int],
                 default_float: tuple[float, float, bool, bool], max_string: int) -> None:
        self.sections = dict(sections)
        self.int_ranges, self.float_ranges = int_ranges, float_ranges
        self.default_int, self.default_float = default_int, default_float
        self.max_string = max_string
        self._types = {section: _field_types(cls) for section, cls in self.sections.items()}

    def names(self, section: str) -> tuple[str, ...]:
        """The fields of `section`, in the order its dataclass declares them."""
        return tuple(self._types[section])

    def coerce(self, section: str, name: str, value: Any, *, text: bool = False) -> Any:
        """`value` for field `section.name` as that field's type, within its range, or a DPGANError
        that names the field, the value and what is allowed. `text`: value is a --set string
        (`--set loss.labelmix=False`), read by the field's type: true/false in any case for booleans,
        decimal digits for integers, a number for floats, the text itself for strings, null (or none)
        for optional fields. From JSON: booleans are true/false (also as strings, any case) only,
        integers refuse floats and booleans, floats accept integers, strings refuse anything else."""
        if section not in self._types:
            raise DPGANError(f"unknown config section {str(section)[:80]!r}; the sections are {list(self.sections)}")
        types = self._types[section]
        if name not in types:
            raise DPGANError(f"unknown option {section}.{str(name)[:80]}; the options of {section} are {sorted(types)}")
        key, ft = f"{section}.{name}", types[name]
        given = value
        if text and isinstance(value, str):
            value = _from_text(value, ft)
        ok, out = self._typed(key, ft, value)
        if not ok:
            raise DPGANError(f"{key}={show(given)} is not allowed: {key} is {self._allowed(key, ft)}")
        return out

    def coerce_section(self, section: str, values: Any, *, text: bool = False) -> dict[str, Any]:
        """An object of options for one section, each value through `coerce`."""
        if not isinstance(values, dict):
            raise DPGANError(f"config section {section!r} must be an object of options, not {kind_of(values)}")
        return {name: self.coerce(section, name, value, text=text) for name, value in values.items()}

    def parse_set(self, items: list[str]) -> dict[str, dict[str, Any]]:
        """`--set SECTION.FIELD=VALUE` items as typed overrides (see `coerce`)."""
        out: dict[str, dict[str, Any]] = {}
        for item in items:
            key, sep, raw = item.partition("=")
            section, dot, name = key.strip().partition(".")
            if not sep or not dot:
                raise DPGANError(f"--set {show(item)}: expected SECTION.FIELD=VALUE, e.g. train.steps=100")
            out.setdefault(section, {})[name] = self.coerce(section, name, raw, text=True)
        return out

    def _allowed(self, key: str, ft: _FieldType) -> str:
        if ft.base is bool:
            text = "true or false"
        elif ft.base is int:
            lo, hi = self.int_ranges.get(key, self.default_int)
            text = f"an integer from {lo} to {hi}"
        elif ft.base is float:
            lo, hi, lo_in, hi_in = self.float_ranges.get(key, self.default_float)
            text = f"a finite number in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"
        else:
            text = f"a string (at most {self.max_string} characters)"
        return text + (", or null" if ft.optional else "")

    def _typed(self, key: str, ft: _FieldType, value: Any) -> tuple[bool, Any]:
        if value is None:
            return ft.optional, None
        if ft.base is bool:
            if isinstance(value, bool):
                return True, value
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return True, value.strip().lower() == "true"
            return False, None
        if ft.base is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                return False, None
            lo, hi = self.int_ranges.get(key, self.default_int)
            return lo <= int(value) <= hi, int(value)
        if ft.base is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                return False, None
            try:
                v = float(value)
            except OverflowError:  # an integer too large for a float
                return False, None
            lo, hi, lo_in, hi_in = self.float_ranges.get(key, self.default_float)
            inside = (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)
            return math.isfinite(v) and inside, v
        return isinstance(value, str) and len(value) <= self.max_string, value
