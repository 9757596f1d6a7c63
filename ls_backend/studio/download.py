"""Outbound HTTP for task media: every request bounded in time and size.

A :class:`Deadline` is the time budget of one task's media (``FINEPOSE_FETCH_TOTAL_S``, default
20 s). Each request connects within ``FINEPOSE_FETCH_CONNECT_S`` (5 s), waits at most
``FINEPOSE_FETCH_READ_S`` (10 s) for any byte, and never runs past the deadline: a server that
stalls, trickles or answers late ends in :class:`~ls_backend.errors.UpstreamTimeout` (504)
naming its host. Bodies are streamed and refused as soon as they pass the size limit, whether
announced (Content-Length) or not (chunked, gzip), a body shorter than its Content-Length is a
:class:`~ls_backend.errors.MediaError` (422), and at most :data:`MAX_REDIRECTS` redirects are
followed, each to an allowed host only.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import requests
import urllib3

from ls_backend.errors import MediaError, UpstreamTimeout

MAX_REDIRECTS = 5
ERROR_BODY_BYTES = 64 << 10  # what is read of a redirect's or an error's body
CHUNK = 64 << 10


@dataclass(frozen=True)
class Deadline:
    """When the media of one task must have arrived (``time.monotonic()`` seconds)."""

    at: float
    total_s: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + seconds, seconds)

    def left(self) -> float:
        return self.at - time.monotonic()


@dataclass(frozen=True)
class Limits:
    connect_s: float
    read_s: float
    max_bytes: int
    hosts: frozenset  # host[:port] a redirect may lead to

    @classmethod
    def from_settings(cls, settings) -> "Limits":
        return cls(settings.fetch_connect_s, settings.fetch_read_s, settings.max_image_bytes,
                   frozenset(h.lower() for h in settings.media_hosts))


def host_of(url: str) -> str:
    return urlparse(url).netloc or "?"


class BoundedSession(requests.Session):
    """A session whose every request (the SDK's too) has timeouts within ``deadline``, reads its
    body eagerly under the limits, and follows redirects to allowed hosts only."""

    def __init__(self, limits: Limits, deadline: Deadline):
        super().__init__()
        self.limits, self.deadline = limits, deadline
        self.max_redirects = MAX_REDIRECTS
        self.trust_env = False  # no proxies or .netrc credentials from the environment
        self.hooks["response"].append(self._on_response)

    def request(self, method, url, **kwargs):
        left = self._left(url)
        kwargs["timeout"] = (min(self.limits.connect_s, left), min(self.limits.read_s, left))
        kwargs["stream"] = True
        try:
            return super().request(method, url, **kwargs)
        except requests.exceptions.ConnectTimeout:
            raise UpstreamTimeout(f"{host_of(url)} did not accept a connection within "
                                  f"{min(self.limits.connect_s, left):.0f} s (FINEPOSE_FETCH_CONNECT_S)") from None
        except requests.exceptions.ReadTimeout:
            raise UpstreamTimeout(f"{host_of(url)} did not answer within "
                                  f"{min(self.limits.read_s, left):.0f} s (FINEPOSE_FETCH_READ_S)") from None
        except requests.exceptions.TooManyRedirects:
            raise MediaError(f"{host_of(url)}: more than {MAX_REDIRECTS} redirects") from None
        except requests.exceptions.ConnectionError as exc:
            raise MediaError(f"{host_of(url)} is unreachable: {_reason(exc)}") from None

    def _left(self, url: str) -> float:
        left = self.deadline.left()
        if left <= 0:
            raise UpstreamTimeout(f"{host_of(url)}: the task's media took over {self.deadline.total_s:g} s "
                                  "(FINEPOSE_FETCH_TOTAL_S)")
        return left

    def _on_response(self, response, *args, **kwargs):
        if response.is_redirect:
            target = urlparse(urljoin(response.url, response.headers.get("location", "")))
            if target.scheme not in ("http", "https") or target.netloc.lower() not in self.limits.hosts or target.username:
                response.close()
                raise MediaError(f"refused redirect from {host_of(response.url)} to {target.netloc or target.scheme}: "
                                 "host not allowed (FINEPOSE_ALLOWED_HOSTS)")
        ok = 200 <= response.status_code < 300
        limit = self.limits.max_bytes if ok else ERROR_BODY_BYTES
        length = response.headers.get("content-length", "")
        if ok and length.isdigit() and int(length) > limit:
            response.close()
            raise MediaError(f"{host_of(response.url)} announces {int(length)} bytes, over the limit of {limit} "
                             "(FINEPOSE_MAX_IMAGE_BYTES)")
        response._content = read_body(response, limit, self.limits.read_s, self.deadline, truncate=not ok)
        response._content_consumed = True
        response.close()
        return response


def read_body(response, limit: int, read_s: float, deadline: Deadline, truncate: bool = False) -> bytes:
    """The (decoded) body of a streamed ``response``, read chunk by chunk with the socket's
    timeout never past ``deadline``; over ``limit`` bytes it is refused (or cut, ``truncate``)."""
    raw, host = response.raw, host_of(response.url)
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    chunks, size = [], 0
    while True:
        left = deadline.left()
        if left <= 0:
            raise UpstreamTimeout(f"{host} sent {size} bytes and was still sending after {deadline.total_s:g} s "
                                  "(FINEPOSE_FETCH_TOTAL_S)")
        if sock is not None:
            sock.settimeout(max(0.01, min(read_s, left)))
        try:
            chunk = raw.read1(CHUNK, decode_content=True)
        except (urllib3.exceptions.ReadTimeoutError, socket.timeout, TimeoutError):
            raise UpstreamTimeout(f"{host} sent {size} bytes, then nothing for {min(read_s, left):.0f} s "
                                  "(FINEPOSE_FETCH_READ_S / FINEPOSE_FETCH_TOTAL_S)") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise MediaError(f"{host} broke the connection after {size} bytes ({_reason(exc)})") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk[: limit - size + len(chunk)])
                return b"".join(chunks)
            raise MediaError(f"{host} sent over {limit} bytes, the limit (FINEPOSE_MAX_IMAGE_BYTES)")
        chunks.append(chunk)


def _reason(exc: BaseException) -> str:
    """A short reason without the pool's repr (which names no secrets but is long)."""
    text = str(exc)
    for marker in ("IncompleteRead", "Connection refused", "Name or service not known", "Connection reset",
                   "timed out", "RemoteDisconnected"):
        if marker in text:
            return marker.lower() if marker != "IncompleteRead" else "closed before the announced length"
    return type(exc).__name__
