"""The lab's local HTTP server: one page (page.html) and a small JSON API over ``Lab``.

Not Gradio (which serves the Dirac page): the lab redraws a plane of ~1,500 points, a heat map and arrows several
times a second and takes mouse clicks on the plane. Gradio would send a rendered figure per frame through its
queue; here a frame is ~50 kB of JSON drawn on a canvas by the browser, and the standard library serves it with no
extra dependency. The server binds to 127.0.0.1 unless told otherwise, loads nothing from the internet, and sends
no telemetry.

API (every reply is JSON; a user's mistake is ``{"error": "one line"}`` with status 400, never a dead server):
    GET  /api/init                       the menus, the initial setup, the replay if one is open
    POST /api/start   {slot, setup}      (re)start run a or b from step 0
    POST /api/step    {slot, what, n}    what = train (n G steps) | d | g (one phase); returns the frame
    GET  /api/frame?slot=a               the run's frame
    GET  /api/yaml?slot=a                the run's config as YAML (a download)
    POST /api/replay  {path}             open a run directory; GET /api/replay?index=I for its snapshot I
"""
from __future__ import annotations

import json
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from gankit.errors import GankitError
from gankit.lab import setup as lab_setup
from gankit.lab.session import Lab

MAX_BODY = 1 << 20  # a setup with 500 drawn points is ~20 kB


def page_html() -> bytes:
    return resources.files("gankit.lab").joinpath("page.html").read_bytes()


class LabServer(ThreadingHTTPServer):
    # Request threads are joined by server_close(): a daemon thread still inside a torch op when the interpreter
    # exits aborts the process ("terminate called without an active exception"), seen at a failing test's exit.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], lab: Lab) -> None:
        super().__init__(address, LabHandler)
        self.lab = lab
        self.lock = threading.Lock()  # torch work and the runs' RNG swaps: one request at a time


class LabHandler(BaseHTTPRequestHandler):
    server: LabServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the page polls many times a second
        return

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, payload: Any, status: int = 200) -> None:
        self._send(status, json.dumps(payload, allow_nan=False).encode(), "application/json")

    def _error(self, message: str, status: int = 400) -> None:
        self._json({"error": message}, status)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise GankitError(f"request too large ({length} bytes; at most {MAX_BODY})")
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise GankitError("the request is not valid JSON") from None

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if method == "GET" and url.path in ("/", "/index.html"):
                return self._send(200, page_html(), "text/html; charset=utf-8")
            body = self._body() if method == "POST" else {}
            if not isinstance(body, dict):
                raise GankitError("the request must be a JSON object")
            with self.server.lock:
                lab = self.server.lab
                route = (method, url.path)
                if route == ("GET", "/api/init"):
                    replay = lab.replay_frame(0) if lab.replay is not None else None
                    return self._json({"choices": lab_setup.choices(), "setup": lab.initial, "replay": replay})
                if route == ("POST", "/api/start"):
                    return self._json(lab.start(body.get("slot"), body.get("setup")))
                if route == ("POST", "/api/step"):
                    return self._json(lab.advance(body.get("slot"), body.get("what"), body.get("n", 1)))
                if route == ("GET", "/api/frame"):
                    return self._json(lab.frame(query.get("slot")))
                if route == ("GET", "/api/yaml"):
                    slot = query.get("slot")
                    text = lab.yaml(slot).encode()
                    return self._send(200, text, "application/x-yaml; charset=utf-8",
                                      {"Content-Disposition": f'attachment; filename="lab_{slot}.yaml"'})
                if route == ("POST", "/api/replay"):
                    return self._json(lab.open_replay(body.get("path")))
                if route == ("GET", "/api/replay"):
                    try:
                        index = int(query.get("index", "0"))
                    except ValueError:
                        raise GankitError(f"snapshot index must be a whole number, got {query.get('index')!r}") \
                            from None
                    return self._json(lab.replay_frame(index))
            return self._error(f"no such page: {method} {url.path}", HTTPStatus.NOT_FOUND)
        except GankitError as exc:
            return self._error(str(exc))
        except (BrokenPipeError, ConnectionResetError):
            return None
        except Exception as exc:  # a bug must not take the page down: report it and keep serving
            traceback.print_exc(file=sys.stderr)
            return self._error(f"internal error ({type(exc).__name__}: {exc}); the server is still running", 500)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


def serve(lab: Lab, host: str = "127.0.0.1", port: int = 7870) -> LabServer:
    """A started server (in a thread of its own); ``shutdown()`` and ``server_close()`` stop it."""
    try:
        server = LabServer((host, port), lab)
    except OSError as exc:
        raise GankitError(f"--port {port}: cannot serve on {host}:{port} ({exc.strerror or exc})") from None
    threading.Thread(target=server.serve_forever, name="gankit-lab", daemon=True).start()
    return server


def run(config_name: str | None, host: str, port: int, replay: Path | None) -> int:
    """`gankit lab`: serve until Ctrl+C."""
    lab = Lab(config_name, replay)
    server = serve(lab, host, port)
    url_host = f"[{host}]" if ":" in host else host
    print(f"gankit lab: serving on http://{url_host}:{server.server_address[1]}/ (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        lab.close()
    return 0
