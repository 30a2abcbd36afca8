"""The demo's HTTP front end: standard library only, local by default, never brought down by a request.

Routes: GET / and three static files; GET /api/info; POST /api/label (upload a label PNG, get
ids at the model's resolution); POST /api/generate (ids or PNG, seed, optional mask + new_seed ->
PNG). Every failure inside a handler is answered as JSON `{"error": "..."}` with a 4xx/5xx status;
the server thread keeps serving. The body size is checked from Content-Length before a byte is
read, and POSTs must say `Content-Type: application/json`, which a foreign web page cannot send to
this port without a CORS preflight the server never grants.
"""

from __future__ import annotations

import json
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from dpgan.inference.demo.backend import DemoBackend, DemoLimits, RequestError
from dpgan.errors import DPGANError

STATIC_FILES = {  # URL path -> (file in dpgan/inference/demo/static, content type); nothing else is served
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
DRAIN_LIMIT = 64 * 1024 * 1024  # an oversized body up to this size is read and dropped so the client sees the 413
CSP = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


class DemoServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the backend its handlers answer with."""

    daemon_threads = True  # a hung client never keeps the process alive at Ctrl-C

    def __init__(self, address: tuple[str, int], backend: DemoBackend, *, quiet: bool = False) -> None:
        super().__init__(address, DemoRequestHandler)
        self.backend = backend
        self.quiet = quiet

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Errors outside a handler method (a socket reset mid-response) are logged, never raised."""
        if not self.quiet:
            print(f"dpgan demo: connection from {client_address[0]} failed:", file=sys.stderr)
            traceback.print_exc()


class DemoRequestHandler(BaseHTTPRequestHandler):
    server: DemoServer
    server_version = "dpgan-demo"
    timeout = 30  # seconds a client may stall mid-request before its thread gives up
    protocol_version = "HTTP/1.1"

    # --- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a GET with a body: never read it, so don't reuse the connection
        if path == "/api/info":
            self._send_json(self.server.backend.describe())
        elif path in STATIC_FILES:
            name, ctype = STATIC_FILES[path]
            data = resources.files("dpgan.inference.demo").joinpath("static", name).read_bytes()
            self._send(HTTPStatus.OK, data, ctype)
        else:
            raise RequestError(f"no such page: {path}", status=HTTPStatus.NOT_FOUND)

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        backend = self.server.backend
        if path not in ("/api/generate", "/api/label"):
            self._discard_body()
            raise RequestError(f"no such endpoint: POST {path}", status=HTTPStatus.NOT_FOUND)
        body = self._read_json(backend.limits)
        if path == "/api/label":
            self._send_json(backend.label_from_upload(body))
        else:
            self._send(HTTPStatus.OK, backend.generate_png(body), "image/png")

    def _answer(self, handler) -> None:
        """Run one route; turn whatever it raises into a JSON error instead of a dropped connection."""
        try:
            handler()
        except RequestError as exc:
            self._send_error(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client went away: nobody to answer
        except Exception as exc:
            if not self.server.quiet:
                traceback.print_exc()
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR,
                             f"internal error while answering {self.command} {self.path}: "
                             f"{type(exc).__name__}: {exc}")

    # --- request bodies --------------------------------------------------------------------

    def _content_length(self) -> int:
        raw = self.headers.get("Content-Length")
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True
            raise RequestError("chunked request bodies are not supported; send a Content-Length",
                               status=HTTPStatus.LENGTH_REQUIRED)
        if raw is None:
            self.close_connection = True
            raise RequestError("a POST needs a Content-Length header", status=HTTPStatus.LENGTH_REQUIRED)
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise RequestError(f"Content-Length {raw!r} is not a byte count")
        return length

    def _discard_body(self) -> None:
        length = self._content_length()
        if length > DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def _read_json(self, limits: DemoLimits) -> dict[str, Any]:
        length = self._content_length()
        if length > limits.max_body_bytes:
            self._discard_body()
            self.close_connection = True
            raise RequestError(
                f"request body is {length} bytes; the demo accepts at most {limits.max_body_bytes} "
                f"({limits.max_body_bytes / 2**20:.0f} MiB)", status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            self._discard_body()
            raise RequestError(f"POST bodies must be application/json, got {ctype or 'no Content-Type'!r}",
                               status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        raw = self.rfile.read(length)
        if len(raw) != length:
            self.close_connection = True
            raise RequestError(f"request body ended after {len(raw)} of {length} bytes")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise RequestError(f"request body is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise RequestError("request body must be a JSON object")
        return body

    # --- responses -------------------------------------------------------------------------

    def _send(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(self, obj: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _send_error(self, status: int, message: str) -> None:
        try:
            self._send_json({"error": message}, status=status)
        except OSError:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, unknown method) in the same JSON shape."""
        self.close_connection = True
        self._send_error(code, message or HTTPStatus(code).phrase)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        if not self.server.quiet:
            sys.stderr.write(f"dpgan demo: {self.address_string()} {format % args}\n")


def make_server(backend: DemoBackend, host: str = "127.0.0.1", port: int = 8000, *,
                quiet: bool = False) -> DemoServer:
    """A bound, not yet serving, server; port 0 picks a free port (read it from `server.url`)."""
    try:
        return DemoServer((host, port), backend, quiet=quiet)
    except OSError as exc:
        raise DPGANError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try another --port, or 0") from None


def serve(checkpoint: str | Path, host: str = "127.0.0.1", port: int = 8000, device: str = "auto") -> int:
    """Load a run, print the page's address and serve until Ctrl-C."""
    backend = DemoBackend.from_checkpoint(checkpoint, device)
    server = make_server(backend, host, port)
    print(f"dpgan demo: {backend.info.name} generator, step {backend.loaded.step}, "
          f"{backend.width}x{backend.height}, on {backend.device}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"dpgan demo: warning: listening on {host}, so other machines can reach this page")
    print(f"dpgan demo: open {server.url}  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
