"""The demo page as a person uses it, in headless Chromium: paint with two class brushes, generate,
change the seed, generate again, resample a region, download; upload a label PNG and a broken file.

Needs Debian's chromium (/usr/bin/chromium, or DPGAN_CHROMIUM=path) and the `playwright` Python
package; scripts/demo_e2e.sh installs both. Without them this test fails, saying so: it is
deselected from the default run by its marker (`-m "not e2e"`), never skipped.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpgan.data.io import colour_table
from dpgan.inference.demo import browser

pytestmark = pytest.mark.e2e

INSTALL_HINT = "run scripts/demo_e2e.sh (apt-get install -y chromium; pip install playwright)"


def chromium_path() -> str:
    path = browser.chromium_path()
    if not Path(path).is_file():
        pytest.fail(f"Chromium not found at {path}: the e2e demo test needs it; {INSTALL_HINT}")
    return path


def require_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the Python package 'playwright' is not installed; {INSTALL_HINT}")
    return sync_playwright


def test_chromium_and_playwright_are_installed():
    """Fails (the fixtures below then error) with the install hint when either is missing."""
    assert os.access(chromium_path(), os.X_OK)
    require_playwright()


@pytest.fixture(scope="module")
def page(demo_server):
    sync_playwright = require_playwright()
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=chromium_path(), args=browser.CHROMIUM_ARGS)
        pg = chrome.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(demo_server.url)
        pg.wait_for_selector("body[data-ready=true]", timeout=20_000)
        yield pg
        chrome.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def canvas_colours(page, backend) -> np.ndarray:
    """(H, W) packed 0xRRGGBB colours of the label canvas as the page drew it."""
    rgba = page.evaluate("""() => { const c = document.getElementById('label-canvas');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    rgb = np.array(rgba, np.int64).reshape(backend.height, backend.width, 4)[..., :3]
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def canvas_ids(page, backend) -> np.ndarray:
    """The label map the canvas shows, read back through the dataset's colour table."""
    return np.vectorize(colour_table(backend.info.colors).__getitem__)(canvas_colours(page, backend))


def shown_image(page) -> np.ndarray:
    """The result <img> as the browser displays it, read back through a canvas."""
    page.wait_for_function("() => { const i = document.getElementById('result'); "
                           "return !i.hidden && i.complete && i.naturalWidth > 0; }", timeout=20_000)
    size, rgba = page.evaluate("""() => { const i = document.getElementById('result');
        const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(i, 0, 0);
        return [[c.height, c.width], Array.from(g.getImageData(0, 0, c.width, c.height).data)]; }""")
    return np.array(rgba, np.uint8).reshape(*size, 4)[..., :3]


def click_and_get_image(page, selector: str) -> np.ndarray:
    """Click a button that asks for an image, wait for it, and fetch it through the download link."""
    before = page.get_attribute("#result", "src")
    page.click(selector)
    page.wait_for_function("(old) => { const i = document.getElementById('result'); "
                           "return i.getAttribute('src') !== old && i.complete && i.naturalWidth > 0; }",
                           arg=before, timeout=20_000)
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == page.get_attribute("#download", "download")
    return np.asarray(Image.open(download.value.path()).convert("RGB"))


def test_paint_generate_reseed_resample(page, demo_server):
    backend = demo_server.backend
    info = backend.info
    names = [b.strip() for b in page.locator("#palette button").all_inner_texts()]
    assert names == list(info.class_names)
    start = canvas_ids(page, backend)
    assert (start == 0).all()  # the map starts filled with the first class (sky)

    road, car = info.class_names.index("road"), info.class_names.index("car")
    page.eval_on_selector("#brush-size", "(el) => { el.value = '8'; el.dispatchEvent(new Event('input')); }")
    assert page.inner_text("#brush-size-value") == "8"
    page.click(f"#palette button[data-class-id='{road}']")
    browser.stroke(page, [(0.05, 0.8), (0.5, 0.75), (0.95, 0.8)])
    page.click(f"#palette button[data-class-id='{car}']")
    browser.stroke(page, [(0.3, 0.55), (0.45, 0.55)])
    painted = canvas_ids(page, backend)
    assert (painted == road).sum() > 50 and (painted == car).sum() > 10
    assert set(np.unique(painted)) == {0, road, car}

    page.fill("#seed", "11")
    first = click_and_get_image(page, "#generate")
    assert first.shape == (backend.height, backend.width, 3) and first.std() > 0
    shown = shown_image(page)
    assert shown.shape == first.shape and shown.std() > 0
    assert np.abs(shown.astype(int) - first).max() <= 2  # the page shows what it received
    # what the page shows is what the model draws for the painted map and seed 11
    np.testing.assert_array_equal(first, backend.render(painted, 11))
    assert page.get_attribute("#download", "download") == "dpgan_seed11.png"
    assert page.is_visible("#download")

    page.fill("#seed", "12")
    second = click_and_get_image(page, "#generate")
    assert second.shape == first.shape and not np.array_equal(first, second)
    assert not np.array_equal(shown_image(page), shown)
    np.testing.assert_array_equal(second, backend.render(painted, 12))

    # resample: paint a region in mask mode; the label map stays as it was
    page.check("#mode-mask")
    browser.stroke(page, [(0.7, 0.2), (0.9, 0.4)])
    tinted = ~np.isin(canvas_colours(page, backend), list(colour_table(info.colors)))
    assert tinted.sum() > 20  # the region shows as a tint over the class colours
    resampled = click_and_get_image(page, "#resample")
    assert not np.array_equal(resampled, second)
    assert "_region" in page.get_attribute("#download", "download")
    page.click("#clear-mask")
    np.testing.assert_array_equal(canvas_ids(page, backend), painted)


def test_a_broken_upload_shows_the_servers_message(page, tmp_path):
    bad = tmp_path / "labels.png"
    bad.write_bytes(b"this is not a png")
    page.set_input_files("#upload", str(bad))
    page.wait_for_selector("#status.error", timeout=20_000)
    assert "not a PNG file" in page.inner_text("#status")
    page.wait_for_selector("body[data-ready=true]")  # the page still works


def test_uploading_a_label_png_fills_the_canvas(page, demo_server, tmp_path):
    backend = demo_server.backend
    small = np.zeros((backend.height // 2, backend.width // 2), np.uint8)
    small[8:, :] = 2
    small[10:14, 4:12] = 10
    Image.fromarray(small, mode="L").save(tmp_path / "street.png")
    page.set_input_files("#upload", str(tmp_path / "street.png"))
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('loaded')")
    assert "resized from 32x16" in page.inner_text("#status")
    np.testing.assert_array_equal(canvas_ids(page, backend), small.repeat(2, 0).repeat(2, 1))
