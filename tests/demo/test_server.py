"""The demo server over real HTTP: right images for right requests, one clear JSON error for
every bad one, and still answering afterwards."""

import base64
import http.client
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from dpgan.data.synthetic import SYNTHETIC_STREETS
from dpgan.inference.synthesize import generate
from dpgan.visualize import to_uint8

H, W = 32, 64
N = SYNTHETIC_STREETS.num_classes


def request(server, method, path, body=None, headers=None):
    """(status, headers, body bytes); a dict body is sent as JSON."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    hdrs = dict(headers or {})
    if isinstance(body, dict | list):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=hdrs)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, res.headers, data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def label_map(seed: int = 0) -> np.ndarray:
    """A street-like map: sky, building block, road, a car; deterministic."""
    lab = np.zeros((H, W), np.uint8)
    lab[H // 3 :] = 2
    lab[4 : H // 3, 8:30] = 1
    lab[20:26, 10 + seed : 24 + seed] = 10
    return lab


def generate_ids(server, lab, seed, **extra):
    status, headers, data = request(server, "POST", "/api/generate",
                                    {"label_ids": b64(lab.tobytes()), "seed": seed, **extra})
    assert status == 200, data
    assert headers["Content-Type"] == "image/png"
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (W, H)
    return np.asarray(img)


def assert_alive(server):
    status, _, data = request(server, "GET", "/api/info")
    assert status == 200 and json.loads(data)["height"] == H


def test_info_describes_classes_colours_and_size(demo_server):
    status, headers, data = request(demo_server, "GET", "/api/info")
    assert status == 200 and headers["Content-Type"] == "application/json"
    info = json.loads(data)
    assert [c["name"] for c in info["classes"]] == list(SYNTHETIC_STREETS.class_names)
    assert [tuple(c["color"]) for c in info["classes"]] == list(SYNTHETIC_STREETS.colors)
    assert [c["id"] for c in info["classes"]] == list(range(N))
    assert (info["height"], info["width"], info["id_bytes"], info["uses_noise"]) == (H, W, 1, True)
    assert info["step"] == 2 and info["limits"]["max_body_bytes"] == 4 * 2**20


def test_page_and_its_files_are_served_and_nothing_else(demo_server):
    for path, ctype in [("/", "text/html"), ("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")]:
        status, headers, data = request(demo_server, "GET", path)
        assert status == 200 and headers["Content-Type"].startswith(ctype) and len(data) > 500
    status, _, page = request(demo_server, "GET", "/")
    assert b"/static/app.js" in page and b"http" not in page.replace(b"http-equiv", b"")  # no CDN
    for path in ["/static/../server.py", "/static/backend.py", "/etc/passwd", "/api/nothing"]:
        status, _, data = request(demo_server, "GET", path)
        assert status == 404 and "no such page" in json.loads(data)["error"]


def test_generate_matches_synthesize_and_is_deterministic(demo_server):
    lab = label_map()
    img = generate_ids(demo_server, lab, seed=7)
    G = demo_server.backend.generator
    expected = to_uint8(generate(G, torch.from_numpy(lab.astype(np.int64))[None], [7]))[0]
    np.testing.assert_array_equal(img, expected)  # seed 7 here is seed 7 in `dpgan synthesize`
    np.testing.assert_array_equal(generate_ids(demo_server, lab, seed=7), img)


def test_two_seeds_give_different_images(demo_server):
    lab = label_map()
    a, b = generate_ids(demo_server, lab, seed=1), generate_ids(demo_server, lab, seed=2)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_label_png_in_ids_or_colours_gives_the_same_image(demo_server):
    lab = label_map()
    by_ids = generate_ids(demo_server, lab, seed=3)
    colours = np.array(SYNTHETIC_STREETS.colors, np.uint8)[lab]
    for png in (png_bytes(lab, "L"), png_bytes(colours)):
        status, _, data = request(demo_server, "POST", "/api/generate", {"label_png": b64(png), "seed": 3})
        assert status == 200
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), by_ids)


def test_resample_changes_only_what_the_mask_asks_for(demo_server):
    lab = label_map()
    a, b = generate_ids(demo_server, lab, seed=4), generate_ids(demo_server, lab, seed=5)
    empty = np.zeros((H, W), np.uint8)
    np.testing.assert_array_equal(generate_ids(demo_server, lab, 4, mask=b64(empty.tobytes()), new_seed=5), a)
    full = np.ones((H, W), np.uint8)
    np.testing.assert_array_equal(generate_ids(demo_server, lab, 4, mask=b64(full.tobytes()), new_seed=5), b)
    half = empty.copy()
    half[:, W // 2 :] = 1
    mixed = generate_ids(demo_server, lab, 4, mask=b64(half.tobytes()), new_seed=5).astype(int)
    assert not np.array_equal(mixed, a) and not np.array_equal(mixed, b)
    # the masked half moves towards seed 5's image, the other half stays nearer seed 4's
    left, right = slice(0, W // 4), slice(3 * W // 4, W)
    assert np.abs(mixed[:, right] - b[:, right]).mean() < np.abs(mixed[:, right] - a[:, right]).mean()
    assert np.abs(mixed[:, left] - a[:, left]).mean() < np.abs(mixed[:, left] - b[:, left]).mean()


def test_upload_resizes_to_the_model_grid(demo_server):
    small = label_map()[::2, ::2]  # 16x32
    colours = np.array(SYNTHETIC_STREETS.colors, np.uint8)[small]
    for png in (png_bytes(small, "L"), png_bytes(colours)):
        status, _, data = request(demo_server, "POST", "/api/label", {"png": "data:image/png;base64," + b64(png)})
        assert status == 200
        res = json.loads(data)
        assert (res["height"], res["width"], res["source_height"], res["source_width"]) == (H, W, 16, 32)
        ids = np.frombuffer(base64.b64decode(res["ids"]), np.uint8).reshape(H, W)
        np.testing.assert_array_equal(ids, small.repeat(2, 0).repeat(2, 1))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, followed by a little (insufficient) data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda kind, payload: (struct.pack(">I", len(payload)) + kind + payload  # noqa: E731
                                   + struct.pack(">I", zlib.crc32(kind + payload)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


GOOD_IDS = b64(label_map().tobytes())
BAD = {  # name: (path, body, expected status, words the error must contain)
    "malformed base64": ("/api/generate", {"label_ids": "@@not base64!!", "seed": 0}, 400, "not valid base64"),
    "not a PNG": ("/api/generate", {"label_png": b64(b"GIF89a" + b"\0" * 50), "seed": 0}, 400, "not a PNG"),
    "truncated PNG": ("/api/label", {"png": b64(png_bytes(label_map(), "L")[:60])}, 400, "cannot be decoded"),
    "id out of range (PNG)": ("/api/generate", {"label_png": b64(png_bytes(np.full((H, W), 200, np.uint8), "L")),
                                                "seed": 0}, 400, "label ids 200 are out of range"),
    "id out of range (ids)": ("/api/generate", {"label_ids": b64(np.full((H, W), N, np.uint8).tobytes()), "seed": 0},
                              400, f"label ids {N} are out of range"),
    "unknown colour": ("/api/label", {"png": b64(png_bytes(np.full((8, 8, 3), 1, np.uint8)))}, 400,
                       "not in the colour table"),
    "ids of wrong size": ("/api/generate", {"label_ids": b64(bytes(H * W - 1)), "seed": 0}, 400, "needs 2048"),
    "PNG of wrong size": ("/api/generate", {"label_png": b64(png_bytes(np.zeros((H, H), np.uint8), "L")),
                                            "seed": 0}, 400, "upload it through /api/label"),
    "mask of wrong size": ("/api/generate", {"label_ids": GOOD_IDS, "seed": 0, "mask": b64(b"\1" * 10),
                                             "new_seed": 1}, 400, "'mask' holds 10 bytes"),
    "huge declared size": ("/api/label", {"png": b64(png_declaring(100_000, 100_000))}, 413, "declares 100000x100000"),
    "empty declared size": ("/api/label", {"png": b64(png_declaring(0, 5))}, 400, "empty image"),
    "no label": ("/api/generate", {"seed": 0}, 400, "exactly one of"),
    "seed not a number": ("/api/generate", {"label_ids": GOOD_IDS, "seed": "seven"}, 400, "'seed' must be a whole"),
    "negative seed": ("/api/generate", {"label_ids": GOOD_IDS, "seed": -1}, 400, "'seed' must be a whole"),
    "boolean seed": ("/api/generate", {"label_ids": GOOD_IDS, "seed": True}, 400, "'seed' must be a whole"),
    "mask without new seed": ("/api/generate", {"label_ids": GOOD_IDS, "seed": 0, "mask": b64(bytes(H * W))}, 400,
                              "needs 'new_seed'"),
    "body is a list": ("/api/generate", [1, 2], 400, "must be a JSON object"),
    "unknown endpoint": ("/api/delete-everything", {}, 404, "no such endpoint"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_one_clear_json_error(demo_server, case):
    path, body, status, words = BAD[case]
    got, headers, data = request(demo_server, "POST", path, body)
    assert got == status and headers["Content-Type"] == "application/json"
    assert words in json.loads(data)["error"]
    assert_alive(demo_server)


def test_bodies_that_are_not_json_or_too_large(demo_server):
    got, _, data = request(demo_server, "POST", "/api/generate", b"{not json", {"Content-Type": "application/json"})
    assert got == 400 and "not valid JSON" in json.loads(data)["error"]
    got, _, data = request(demo_server, "POST", "/api/generate", b"seed=1", {"Content-Type": "text/plain"})
    assert got == 415 and "application/json" in json.loads(data)["error"]
    big = b'{"label_png": "' + b"A" * (4 * 2**20) + b'"}'
    got, headers, data = request(demo_server, "POST", "/api/generate", big, {"Content-Type": "application/json"})
    assert got == 413 and "at most 4194304" in json.loads(data)["error"]
    assert headers["Connection"] == "close"
    assert_alive(demo_server)


def raw_exchange(server, payload: bytes) -> bytes:
    with socket.create_connection(server.server_address[:2], timeout=30) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_broken_http_is_answered_not_fatal(demo_server):
    # a one-word request line is HTTP/0.9: the answer is a bare body, no status line
    assert b"Bad request syntax" in raw_exchange(demo_server, b"NONSENSE\r\n\r\n")
    answer = raw_exchange(demo_server, b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b" 501 " in answer.split(b"\r\n")[0] and b'{"error": "Unsupported method' in answer
    answer = raw_exchange(demo_server, b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n")
    assert b" 411 " in answer.split(b"\r\n")[0] and b"Content-Length" in answer
    answer = raw_exchange(demo_server, b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                          b"Content-Type: application/json\r\n\r\n{\"seed\"")
    assert b" 400 " in answer.split(b"\r\n")[0] and b"ended after 7 of 100 bytes" in answer
    assert_alive(demo_server)


def test_an_internal_failure_is_a_500_and_the_server_lives_on(demo_server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated generator failure")

    monkeypatch.setattr(demo_server.backend, "render", broken)
    got, _, data = request(demo_server, "POST", "/api/generate", {"label_ids": GOOD_IDS, "seed": 0})
    assert got == 500 and "RuntimeError: simulated generator failure" in json.loads(data)["error"]
    monkeypatch.undo()
    assert_alive(demo_server)
    generate_ids(demo_server, label_map(), 0)


def test_concurrent_clients_each_get_their_own_image(demo_server):
    lab = label_map()
    expected = {s: generate_ids(demo_server, lab, s) for s in range(4)}
    results, errors = {}, []

    def client(seed):
        try:
            results[seed] = generate_ids(demo_server, lab, seed)
        except Exception as exc:  # collected: an assert in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(s % 4,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for s, img in results.items():
        np.testing.assert_array_equal(img, expected[s])


def test_cli_serves_on_a_free_port_and_prints_the_url(tiny_run):
    script = ("import argparse, sys; from dpgan.commands import demo; p = argparse.ArgumentParser(); "
              "demo.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script, "demo", "--checkpoint", str(tiny_run), "--port", "0",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "synthetic-streets generator, step 2, 64x32" in lines[0], lines
        url = lines[1].split("open ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        host, port = url[len("http://"):].rstrip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/api/info")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
