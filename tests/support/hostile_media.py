"""A hostile loopback media server for reliability tests and benchmarks, plus hostile payloads.

:class:`HostileMediaServer` serves named files (``server.files[name] = bytes``) on a free
127.0.0.1 port, misbehaving as the path asks:

- ``/ok/<name>``: a plain 200 with a true Content-Length.
- ``/stall/<name>?after=N``: headers and the first N bytes (default 16), then silence until the
  server stops (or ``seconds=S``).
- ``/late/<name>?seconds=S``: silence for S seconds before the status line, then the file.
- ``/trickle/<name>?interval=S``: one byte every S seconds (default 0.2): every read succeeds,
  only a total deadline ends it.
- ``/drop/<name>?after=N``: a true Content-Length, N bytes (default half), then the connection
  is closed.
- ``/flaky/<name>?fails=K``: the first K requests of that path drop mid-body, later ones are fine.
- ``/short-length/<name>``: Content-Length claims half the file, the whole file follows.
- ``/long-length/<name>``: Content-Length claims more than is sent, then the connection closes.
- ``/huge-length/<name>``: Content-Length claims 10 GB (nothing much follows).
- ``/chunked?size=N``: a chunked body of N zero bytes without Content-Length.
- ``/gzip-bomb?size=N``: ``Content-Encoding: gzip`` of N zero bytes (about N/1000 on the wire).
- ``/redirect?to=URL``: 302 to URL (relative or absolute); ``/redirect-loop``: 302 to itself.
- ``/status/<code>``: that status with a short body.
- ``/api/current-user/whoami``: 200, as Label Studio answers a valid token (the server can play
  Label Studio's host).

``hits`` counts requests per path (without the query) and ``headers`` keeps the request
headers of each, so tests can check deduplication and where credentials went. Payload makers:
:func:`png_claiming` (a PNG header claiming any size), :func:`png_bomb` (a real PNG, small on
disk, huge decoded), :func:`gzip_zeros`, :func:`rle_claiming` (a brush RLE whose header claims
any number of values). :class:`StubLabelStudio` accepts webhook predictions (or answers 503).
"""

from __future__ import annotations

import socket
import struct
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

GB = 1 << 30


class HostileMediaServer:
    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.hits: Counter = Counter()
        self.headers: list[tuple[str, dict]] = []
        self.stop = threading.Event()  # wakes every stalled handler
        self._lock = threading.Lock()
        self._gzip_cache: dict[int, bytes] = {}
        self._server = None
        self._thread = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "HostileMediaServer":
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, as FINEPOSE_ALLOWED_HOSTS names it."""
        return f"127.0.0.1:{self._server.server_port}"

    @property
    def base(self) -> str:
        return f"http://{self.host}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def hit(self, path: str, headers) -> int:
        with self._lock:
            self.hits[path] += 1
            self.headers.append((path, dict(headers)))
            return self.hits[path]

    def gzip_of_zeros(self, size: int) -> bytes:
        with self._lock:
            if size not in self._gzip_cache:
                self._gzip_cache[size] = gzip_zeros(size)
            return self._gzip_cache[size]


class _Handler(BaseHTTPRequestHandler):
    server_owner: HostileMediaServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        owner = self.server_owner
        parsed = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        count = owner.hit(parsed.path, self.headers)
        parts = parsed.path.strip("/").split("/", 1)
        kind, name = parts[0], (parts[1] if len(parts) > 1 else "")
        try:
            getattr(self, "serve_" + kind.replace("-", "_"), self.serve_unknown)(name, query, count)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            pass  # the client gave up: that is what many of these tests want

    # -- helpers -----------------------------------------------------------------------------
    def _data(self, name: str) -> bytes | None:
        data = self.server_owner.files.get(name)
        if data is None:
            self._send_status(404, b"no such file\n")
        return data

    def _head(self, status: int, length: int | None, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def _send_status(self, status: int, body: bytes) -> None:
        self._head(status, len(body))
        self.wfile.write(body)

    def _wait(self, seconds: float) -> None:
        self.server_owner.stop.wait(seconds)

    # -- behaviours ------------------------------------------------------------------------
    def serve_unknown(self, name, query, count):
        self._send_status(404, b"unknown behaviour\n")

    def serve_ok(self, name, query, count):
        data = self._data(name)
        if data is not None:
            self._head(200, len(data))
            self.wfile.write(data)

    def serve_stall(self, name, query, count):
        data = self._data(name)
        if data is None:
            return
        after = int(query.get("after", 16))
        self._head(200, len(data))
        self.wfile.write(data[:after])
        self.wfile.flush()
        self._wait(float(query.get("seconds", 3600)))
        self._close()

    def serve_late(self, name, query, count):
        self._wait(float(query.get("seconds", 30)))
        if not self.server_owner.stop.is_set():
            self.serve_ok(name, query, count)
        else:
            self._close()

    def serve_trickle(self, name, query, count):
        data = self._data(name)
        if data is None:
            return
        interval = float(query.get("interval", 0.2))
        self._head(200, len(data))
        for i in range(len(data)):
            if self.server_owner.stop.is_set():
                break
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            self._wait(interval)
        self._close()

    def _drop_body(self, data: bytes, after: int) -> None:
        self._head(200, len(data))
        self.wfile.write(data[:after])
        self._close()

    def serve_drop(self, name, query, count):
        data = self._data(name)
        if data is not None:
            self._drop_body(data, int(query.get("after", len(data) // 2)))

    def _close(self) -> None:
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def serve_flaky(self, name, query, count):
        data = self._data(name)
        if data is None:
            return
        if count <= int(query.get("fails", 1)):
            self._drop_body(data, len(data) // 2)
        else:
            self._head(200, len(data))
            self.wfile.write(data)

    def serve_short_length(self, name, query, count):
        data = self._data(name)
        if data is not None:
            self._head(200, len(data) // 2)
            self.wfile.write(data)
            self._close()

    def serve_long_length(self, name, query, count):
        data = self._data(name)
        if data is not None:
            self._head(200, len(data) + 1000)
            self.wfile.write(data)
            self._close()

    def serve_huge_length(self, name, query, count):
        self._head(200, 10 * GB)
        self.wfile.write(b"\0" * 1024)
        self._close()

    def serve_chunked(self, name, query, count):
        size = int(query.get("size", 30 << 20))
        self._head(200, None, {"Transfer-Encoding": "chunked"})
        block = b"\0" * 65536
        sent = 0
        while sent < size and not self.server_owner.stop.is_set():
            piece = block[: min(len(block), size - sent)]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        self.wfile.write(b"0\r\n\r\n")

    def serve_gzip_bomb(self, name, query, count):
        body = self.server_owner.gzip_of_zeros(int(query.get("size", 1 * GB)))
        self._head(200, len(body), {"Content-Encoding": "gzip"})
        self.wfile.write(body)

    def serve_redirect(self, name, query, count):
        self._head(302, 0, {"Location": query.get("to", "/ok/" + name)})

    def serve_redirect_loop(self, name, query, count):
        self._head(302, 0, {"Location": self.path})

    def serve_api(self, name, query, count):
        """``/api/current-user/whoami``: what Label Studio answers a valid token (so the server
        can stand in for Label Studio's host)."""
        if name.rstrip("/") == "current-user/whoami":
            body = b'{"id": 1, "email": "hostile@example.com"}'
            self._head(200, len(body), {"Content-Type": "application/json"})
            self.wfile.write(body)
        else:
            self._send_status(404, b"no such API\n")

    def serve_status(self, name, query, count):
        self._send_status(int(name or 500), b"status as asked\n")


# -- hostile payloads ----------------------------------------------------------------------------
def gzip_zeros(size: int) -> bytes:
    """gzip of ``size`` zero bytes, compressed as it streams (about size / 1000 bytes)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    block = b"\0" * (1 << 20)
    out = []
    left = size
    while left > 0:
        out.append(compressor.compress(block[: min(len(block), left)]))
        left -= min(len(block), left)
    out.append(compressor.flush())
    data = b"".join(out)
    return data


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's
    header: PIL refuses or allocates on opening it, the bytes are a few dozen)."""

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A real, valid grey PNG of ``width`` x ``height`` zero pixels: small on disk (zlib of
    zeros), ``width * height`` bytes once decoded."""

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def rle_claiming(values: int = 0xFFFFFFFF, body_bytes: int = 64) -> list[int]:
    """A Label Studio brush RLE whose 32-bit header claims ``values`` values (the SDK's decoder
    allocates that many bytes before reading any), followed by ``body_bytes`` bytes of runs."""
    header = values.to_bytes(4, "big")
    # 5 bits word size - 1 (7 -> 8-bit words), 4x4 bits run-length sizes - 1 (15 -> 16-bit)
    bits = format(7, "05b") + format(15, "04b") * 4
    bits += "1" + "11" + format(0xFFFF, "016b") + format(255, "08b")  # one run of 65536 x 255
    while len(bits) % 8:
        bits += "0"
    tail = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return list(header + tail) + [0] * body_bytes



class StubLabelStudio:
    """A loopback stand-in for Label Studio's prediction API: ``POST /api/predictions/`` stores
    the body and answers 201, ``GET`` lists none; both 503 while ``down`` is set. ``base`` is
    its URL."""

    def __init__(self):
        from flask import Flask, jsonify, request

        self.stored: list[dict] = []
        self.down = False
        app = Flask("label-studio-stub")

        @app.get("/api/current-user/whoami/")
        @app.get("/api/current-user/whoami")
        def whoami():
            return jsonify(id=1, email="stub@example.com")

        @app.post("/api/predictions/")
        def create_prediction():
            if self.down:
                return jsonify(detail="down for the test"), 503
            self.stored.append(request.get_json())
            return jsonify({"id": len(self.stored), **request.get_json()}), 201

        @app.get("/api/predictions/")
        def list_predictions():  # none kept for listing: every webhook stores anew
            if self.down:
                return jsonify(detail="down for the test"), 503
            return jsonify([])

        self.app = app

    def __enter__(self) -> "StubLabelStudio":
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
