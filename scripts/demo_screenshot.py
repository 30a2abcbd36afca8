"""Retake docs/images/demo.png: the demo page after generating, driven in headless Chromium.

Usage: python scripts/demo_screenshot.py [RUN] [OUT] [--mask]
RUN (a run folder, checkpoint, saved model or built-in model's name) defaults to the built-in
model synthetic-streets, OUT to docs/images/demo.png. The label map is a synthetic
street scene (validation split, scene 3) uploaded through the page, plus one painted car;
--mask also paints a region and resamples it, to show the mask tint.
Needs chromium (DPGAN_CHROMIUM, PATH or /usr/bin/chromium) and playwright (scripts/demo_e2e.sh installs both).
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

from dpgan.data.synthetic import make_pair
from dpgan.inference.demo import DemoBackend, make_server
from dpgan.inference.demo.browser import CHROMIUM_ARGS, chromium_path, stroke, wait_done

def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("--")]
    args = [a for a in argv if not a.startswith("--")]
    run = args[0] if args else "synthetic-streets"
    out = Path(args[1] if len(args) > 1 else "docs/images/demo.png")
    backend = DemoBackend.from_checkpoint(run, "cpu")
    server = make_server(backend, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    label, _ = make_pair(0, "val", 3, backend.height, backend.width)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        scene = Path(tmp) / "street_scene.png"
        Image.fromarray(label.astype(np.uint8), mode="L").save(scene)
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(server.url)
        page.wait_for_selector("body[data-ready=true]")
        page.set_input_files("#upload", str(scene))
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('loaded')")
        car = backend.info.class_names.index("car")
        page.click(f"#palette button[data-class-id='{car}']")
        page.eval_on_selector("#brush-size", "(el) => { el.value = '6'; el.dispatchEvent(new Event('input')); }")
        stroke(page, [(0.55, 0.8), (0.7, 0.8)])
        page.fill("#seed", "3")
        page.click("#generate")
        wait_done(page)
        if "--mask" in flags:
            page.check("#mode-mask")
            stroke(page, [(0.05, 0.3), (0.25, 0.5)])
            page.click("#resample")
            wait_done(page)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    server.shutdown()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
