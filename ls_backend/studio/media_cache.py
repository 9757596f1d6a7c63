"""The media cache (``<work dir>/media-cache``): downloaded task media, never a partial file.

- A download is written to a private temporary folder and renamed into place only once it is
  complete (``os.replace``: readers see the whole file or none, in any worker process).
- Concurrent fetches of one URL in a process share one download (:meth:`MediaCache.once`).
- A failed download leaves nothing behind; a cached file that turns out unreadable is removed
  (:meth:`MediaCache.forget`), so the next request downloads it again.
- The cache holds at most ``FINEPOSE_MEDIA_CACHE_BYTES`` (default 1 GB): the least recently
  used files go first. Temporary folders left by a killed process are removed after an hour.

:func:`work_dir` picks where the backend writes: ``MODEL_DIR`` when it is writable, else a
temporary folder (bounded like the cache), saying which.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from ls_backend.errors import UpstreamTimeout

logger = logging.getLogger(__name__)

STALE_TMP_S = 3600


class MediaCache:
    def __init__(self, folder: Path, max_bytes: int):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.tmp = self.folder / "tmp"
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}

    @staticmethod
    def key(*parts: str) -> str:
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.media"

    def get(self, key: str) -> Path | None:
        """The cached file of ``key`` (marked as just used), or None."""
        path = self.path(key)
        try:
            os.utime(path)
        except OSError:
            return None
        return path

    def temp_dir(self) -> Path:
        """A fresh private folder for one download (inside the cache: renames stay atomic)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.tmp))

    def put(self, key: str, file: Path) -> Path:
        """Move the complete download ``file`` into the cache; evict to stay within the bound."""
        path = self.path(key)
        os.replace(file, path)
        self.evict(keep=path)
        return path

    def forget(self, path: Path) -> None:
        """Remove a cached file found unusable (no-op for files outside the cache)."""
        if Path(path).parent == self.folder:
            try:
                Path(path).unlink()
                logger.info("media cache: removed unreadable %s", path)
            except FileNotFoundError:
                pass

    def once(self, key: str, download, wait_s: float) -> Path:
        """``download()`` for ``key`` unless it is cached or another thread is already fetching
        it: then wait (at most ``wait_s`` seconds) for that thread's file or error."""
        cached = self.get(key)
        if cached is not None:
            return cached
        with self._lock:
            future = self._inflight.get(key)
            owner = future is None
            if owner:
                future = self._inflight[key] = Future()
        if not owner:
            try:
                return future.result(timeout=max(0.0, wait_s))
            except FutureTimeout:
                raise UpstreamTimeout(f"the media download shared with another request took over {wait_s:.0f} s "
                                      "(FINEPOSE_FETCH_TOTAL_S)") from None
        try:
            cached = self.get(key)  # a concurrent owner may have finished just before us
            path = cached if cached is not None else download()
            future.set_result(path)
            return path
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def evict(self, keep: Path | None = None) -> None:
        """Remove least recently used files until the cache is within its bound, and stale
        temporary folders."""
        try:
            entries = []
            for entry in os.scandir(self.folder):
                if entry.is_file() and entry.name.endswith(".media"):
                    stat = entry.stat()
                    entries.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        except FileNotFoundError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            try:
                path.unlink()
                total -= size
            except FileNotFoundError:
                pass
        self._remove_stale_tmp()

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.media"))

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_S
        try:
            for entry in os.scandir(self.tmp):
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)
        except FileNotFoundError:
            pass


def work_dir(model_dir: Path) -> tuple[Path, bool]:
    """``(folder, persistent)``: ``MODEL_DIR`` when a file can be written there, otherwise a new
    temporary folder (``persistent`` False; logged as a warning naming the reason)."""
    model_dir = Path(model_dir)
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=model_dir, prefix=".write-check-"):
            pass
        return model_dir, True
    except OSError as exc:
        folder = Path(tempfile.mkdtemp(prefix="finepose-work-"))
        logger.warning("MODEL_DIR %s is not writable (%s): media cache and smart-keypoint memory use the "
                       "temporary folder %s instead (bounded, not shared between worker processes, lost on restart)",
                       model_dir, exc.strerror or exc, folder)
        return folder, False
