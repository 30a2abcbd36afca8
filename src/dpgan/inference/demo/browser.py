"""Driving the demo page from headless Chromium through playwright: shared by the e2e tests
(tests/demo/test_e2e_browser.py) and the screenshot script (scripts/demo_screenshot.py).

Nothing here imports playwright; the caller passes its page. Debian's chromium is used, never a
browser downloaded by `playwright install`.
"""

from __future__ import annotations

import os
import shutil

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """DPGAN_CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium (which may not exist)."""
    return os.environ.get("DPGAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def stroke(page, points: list[tuple[float, float]], steps: int = 8) -> None:
    """Drag the mouse over the label canvas through points given as fractions of its box."""
    box = page.locator("#label-canvas").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def wait_done(page) -> None:
    """Wait until the status line reports a finished request."""
    page.wait_for_function("() => document.getElementById('status').textContent.includes('done')")
