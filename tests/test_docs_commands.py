"""Every `dpgan` command the README and docs/ show exists as written: its subcommand and each of its flags
are in the real argparse parser (the fenced bash blocks and the inline `dpgan ...` spans)."""

import re
import shlex
from pathlib import Path

import pytest

from dpgan.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]*(?:\n[^`\n]+)*)`")  # may wrap onto the next line, never past a blank one
SEPARATORS = {"&&", "||", ";", "|", "&"}


def _options() -> dict[str | None, set[str]]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    out: dict[str | None, set[str]] = {None: {s for a in parser._actions for s in a.option_strings}}
    for name, p in sub.choices.items():
        out[name] = {s for a in p._actions for s in a.option_strings}
    return out


def _snippets(path: Path) -> list[tuple[str, str]]:
    """(where, shell text) of the fenced bash blocks and inline code spans that run dpgan."""
    text = path.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        if m.group(1) in ("bash", "sh", "shell", "console", ""):
            line = text.count("\n", 0, m.start()) + 1
            body = m.group(2).replace("\\\n", " ")
            found += [(f"{path.name}:{line}", cmd) for cmd in body.splitlines()]
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in INLINE.finditer(prose):
        span = m.group(1).replace("\n", " ")
        if re.match(r"(\S*/)?dpgan \S", span):
            found.append((f"{path.name}:{prose.count(chr(10), 0, m.start()) + 1}", span))
    return found


def _dpgan_calls(shell: str) -> list[list[str]]:
    """The argument lists of each `dpgan`, `.venv/bin/dpgan` or `-m dpgan` in one command line."""
    try:
        tokens = shlex.split(shell, comments=True)
    except ValueError:  # an unbalanced quote in prose; split it plainly
        tokens = shell.split()
    calls, current = [], None
    for tok in tokens:
        if tok in SEPARATORS:
            current = None
        elif current is not None:
            current.append(tok)
        elif tok == "dpgan" or tok.endswith("/dpgan"):
            current = []
            calls.append(current)
    return calls


def _problems(args: list[str], options: dict[str | None, set[str]]) -> list[str]:
    if not args:
        return []
    command = None
    if args[0].endswith(":"):  # a message dpgan printed ("dpgan evaluate: error: ..."), not a command
        return []
    if not args[0].startswith("-") and args[0] != "...":
        command = args[0]
        if command not in options:
            return [f"no subcommand {command!r}"]
        args = args[1:]
    problems = []
    for tok in args:
        flag = tok.strip("[]()'\"").split("=", 1)[0]
        if flag.startswith("--") and len(flag) > 2 and flag not in options[command]:
            problems.append(f"`dpgan {command or ''}` has no flag {flag}")
    return problems


CASES = [(where, shell) for doc in DOCS for where, shell in _snippets(doc) if _dpgan_calls(shell)]


def test_the_docs_show_dpgan_commands():
    assert len(CASES) > 20
    assert any("README.md" in where and "evaluate" in shell for where, shell in CASES)


@pytest.mark.parametrize(("where", "shell"), CASES, ids=[w for w, _ in CASES])
def test_documented_command_exists(where, shell):
    options = _options()
    problems = [p for call in _dpgan_calls(shell) for p in _problems(call, options)]
    assert not problems, f"{where}: {shell.strip()!r}: {'; '.join(problems)}"


def test_the_checker_catches_a_wrong_flag_and_subcommand():
    options = _options()
    assert _problems(["evaluate", "--run", "R", "--segmenter-weights", "F"], options)
    assert _problems(["trian"], options)
    assert not _problems(["evaluate", "--run", "R", "[--drn", "F]"], options)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_venv_tools_are_named_by_their_path(doc):
    """Outside an activated venv a bare `tensorboard` is "command not found"; the docs say .venv/bin/."""
    for m in FENCE.finditer(doc.read_text(encoding="utf-8")):
        for line in m.group(2).splitlines():
            assert not re.match(r"\s*tensorboard\b", line), f"{doc.name}: {line.strip()!r}: use .venv/bin/tensorboard"
