"""What the demo page asks for, checked and answered without any HTTP in sight.

Every input comes from a browser, or from anyone who can reach the port, so it is measured
before it is decoded: the body size before base64, the PNG's declared width and height before
its pixels. A bad request becomes a `RequestError` (an HTTP status and one sentence); the
generator only ever sees a label map of its own resolution holding valid class ids.

Noise follows `dpgan.inference.synthesize`: the image for seed s uses z drawn from
`torch.Generator().manual_seed(s)`, so the page, `dpgan synthesize` and the Python API agree on
what "seed 7" looks like. Resampling a region uses a noise *map*: z of `seed` everywhere and z of
`new_seed` under the painted mask (the generator accepts z as (B, z_dim, H, W)).
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dpgan.data.io import decode_label, describe_out_of_range, out_of_range_ids
from dpgan.errors import DPGANError
from dpgan.inference.synthesize import LoadedGenerator, generate, load_generator, mixed_noise, resize_label
from dpgan.tensors import one_hot
from dpgan.visualize import to_uint8

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SEED = 2**63 - 1
UPLOAD_NAME = "uploaded label PNG"  # how error messages name the file a user sent


@dataclass(frozen=True)
class DemoLimits:
    """What one request may hold. 4 MiB fits a 1024x2048 label PNG many times over; the pixel
    limit keeps a small file that declares a huge image (a decompression bomb) from being decoded."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_width: int = 2048
    max_height: int = 2048
    max_pixels: int = 1024 * 2048


class RequestError(DPGANError):
    """A request the demo cannot answer, with the HTTP status that says why (400, 413, 415...)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def png_size(data: bytes, what: str) -> tuple[int, int]:
    """(width, height) from the PNG header alone, so a bomb is refused before Pillow sees it."""
    if not data.startswith(PNG_SIGNATURE):
        raise RequestError(f"{what} is not a PNG file (its first bytes are not the PNG signature)")
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise RequestError(f"{what} is a truncated or malformed PNG (no IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


class DemoBackend:
    """One loaded generator plus the checks and conversions the web page needs.

    Generator calls are serialised by a lock: the HTTP server answers several clients at once,
    and one forward pass at a time keeps memory flat and BatchNorm/CUDA state untouched."""

    def __init__(self, loaded: LoadedGenerator, limits: DemoLimits = DemoLimits()) -> None:
        self.loaded = loaded
        self.generator = loaded.generator
        self.info = loaded.info
        self.height = loaded.config.data.height
        self.width = loaded.config.data.width
        self.limits = limits
        self.device = next(self.generator.parameters()).device
        self.uses_noise = bool(getattr(self.generator, "use_3d_noise", True))
        # ids travel as raw bytes: one per pixel when every id fits, else two (little-endian)
        self.id_dtype = np.dtype(np.uint8) if self.info.num_classes <= 256 else np.dtype("<u2")
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "auto",
                        limits: DemoLimits = DemoLimits()) -> DemoBackend:
        return cls(load_generator(checkpoint, device), limits)

    # --- answers ---------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """GET /api/info: everything the page needs to build its palette and canvas."""
        info = self.info
        return {
            "dataset": info.name,
            "classes": [{"id": i, "name": n, "color": list(c)}
                        for i, (n, c) in enumerate(zip(info.class_names, info.colors))],
            "ignore_index": info.ignore_index,
            "height": self.height,
            "width": self.width,
            "id_bytes": self.id_dtype.itemsize,
            "uses_noise": self.uses_noise,
            "step": self.loaded.step,
            "checkpoint": Path(self.loaded.path).name,
            "limits": {"max_body_bytes": self.limits.max_body_bytes, "max_width": self.limits.max_width,
                       "max_height": self.limits.max_height, "max_pixels": self.limits.max_pixels},
        }

    def label_from_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /api/label {png}: a user's label PNG (ids or dataset colours, any size within the
        limits) as ids at the model's resolution, resized nearest-neighbour like `dpgan synthesize`."""
        ids = self._decode_label_png(self._b64(body, "png"))
        source = ids.shape
        ids = resize_label(ids, self.height, self.width)
        return {"ids": self._encode_ids(ids), "height": self.height, "width": self.width,
                "source_height": int(source[0]), "source_width": int(source[1])}

    def generate_png(self, body: dict[str, Any]) -> bytes:
        """POST /api/generate {label_ids | label_png, seed, mask?, new_seed?} -> PNG bytes."""
        if ("label_ids" in body) == ("label_png" in body):
            raise RequestError("send exactly one of 'label_ids' (base64 class ids) or 'label_png' (base64 PNG)")
        if "label_ids" in body:
            label = self._decode_ids(self._b64(body, "label_ids"), "label_ids", self.id_dtype)
            self._check_ids(label, "label_ids")
        else:
            label = self._decode_label_png(self._b64(body, "label_png"))
            if label.shape != (self.height, self.width):
                raise RequestError(
                    f"{UPLOAD_NAME} is {label.shape[1]}x{label.shape[0]} but this model generates "
                    f"{self.width}x{self.height} (width x height); upload it through /api/label to resize it"
                )
        seed = self._seed(body, "seed", default=0)
        mask = None
        if body.get("mask") is not None:
            mask = self._decode_ids(self._b64(body, "mask"), "mask", np.dtype(np.uint8)) != 0
            if "new_seed" not in body:
                raise RequestError("'mask' needs 'new_seed': the seed whose noise goes under the mask")
        new_seed = self._seed(body, "new_seed", default=None) if mask is not None else None
        image = self.render(label, seed, mask, new_seed)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        return buf.getvalue()

    @torch.no_grad()
    def render(self, label_map: np.ndarray, seed: int, mask: np.ndarray | None = None,
               new_seed: int | None = None) -> np.ndarray:
        """(H, W) ids -> (H, W, 3) uint8. With a mask, z of `new_seed` replaces z of `seed` only
        where the mask is set; an empty mask gives exactly the image of `seed`."""
        G = self.generator
        label = torch.from_numpy(label_map.astype(np.int64))[None].to(self.device)
        with self._lock:
            if mask is None or not self.uses_noise:
                return to_uint8(generate(G, label, [seed]))[0]
            under = torch.from_numpy(mask).to(self.device)
            z_map = mixed_noise(seed, seed if new_seed is None else new_seed, under, G.z_dim)
            return to_uint8(G(one_hot(label, G.num_classes), z_map))[0]

    # --- checks and conversions ------------------------------------------------------------

    def _b64(self, body: dict[str, Any], key: str) -> bytes:
        value = body.get(key)
        if not isinstance(value, str):
            raise RequestError(f"'{key}' must be a base64 string")
        if value.startswith("data:") and "," in value:  # a data URL straight from the browser
            value = value.split(",", 1)[1]
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"'{key}' is not valid base64") from None

    def _decode_ids(self, data: bytes, key: str, dtype: np.dtype) -> np.ndarray:
        expected = self.height * self.width * dtype.itemsize
        if len(data) != expected:
            raise RequestError(
                f"'{key}' holds {len(data)} bytes but this model's {self.width}x{self.height} "
                f"(width x height) map needs {expected} ({dtype.itemsize} per pixel)"
            )
        return np.frombuffer(data, dtype=dtype).reshape(self.height, self.width).astype(np.int64)

    def _check_ids(self, ids: np.ndarray, key: str) -> None:
        bad = out_of_range_ids(ids, self.info.num_classes)
        if bad:
            raise RequestError(describe_out_of_range(Path(key), bad, self.info, "ids"))

    def _decode_label_png(self, data: bytes) -> np.ndarray:
        width, height = png_size(data, UPLOAD_NAME)
        lim = self.limits
        if width < 1 or height < 1:
            raise RequestError(f"{UPLOAD_NAME} declares an empty image ({width}x{height})")
        if width > lim.max_width or height > lim.max_height or width * height > lim.max_pixels:
            raise RequestError(
                f"{UPLOAD_NAME} declares {width}x{height} pixels; the demo accepts at most "
                f"{lim.max_width}x{lim.max_height} and {lim.max_pixels} pixels in all", status=413,
            )
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return decode_label(img, self.info, UPLOAD_NAME).astype(np.int64)
        except DPGANError as exc:
            raise RequestError(str(exc)) from None
        except Exception as exc:  # Pillow reports broken files with many exception types
            raise RequestError(f"{UPLOAD_NAME} cannot be decoded ({type(exc).__name__}: {exc})") from None

    def _encode_ids(self, ids: np.ndarray) -> str:
        return base64.b64encode(ids.astype(self.id_dtype).tobytes()).decode("ascii")

    @staticmethod
    def _seed(body: dict[str, Any], key: str, default: int | None) -> int:
        value = body.get(key, default)
        if value is None and default is None:
            raise RequestError(f"'{key}' is required")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise RequestError(f"'{key}' must be a whole number from 0 to {MAX_SEED}, got {value!r}")
        return value
