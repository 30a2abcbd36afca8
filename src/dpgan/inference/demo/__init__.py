"""`dpgan demo`: a local web page to paint label maps and watch a trained generator draw them.

`backend` turns JSON requests into label maps, noise and PNGs (no HTTP in it); `server` is the
standard-library HTTP front end; `static/` holds the page (vanilla JS, no build step, no CDN).
"""

from dpgan.inference.demo.backend import DemoBackend, DemoLimits, RequestError
from dpgan.inference.demo.server import DemoServer, make_server, serve

__all__ = ["DemoBackend", "DemoLimits", "DemoServer", "RequestError", "make_server", "serve"]
