"""One cache of silhouette renderers per process, keyed by mesh file.

Loading a mesh and building its ray-casting scene costs far more than a render, so the
backend (through :class:`~ls_backend.registry.Registry`) and ``refine-batch``'s workers both
keep renderers here: unbounded for a registry's few models, the few most recently used for a
batch that may walk through thousands of meshes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from geometry.mesh import DEFAULT_MAX_BYTES, load_mesh
from geometry.render import SilhouetteRenderer


class RendererCache:
    """Mesh path -> :class:`SilhouetteRenderer`, built on first use; with ``max_size`` the
    least recently used is dropped beyond that many. Thread-safe."""

    def __init__(self, max_size: int | None = None, max_mesh_bytes: int = DEFAULT_MAX_BYTES):
        self.max_size = max_size
        self.max_mesh_bytes = max_mesh_bytes
        self._renderers: OrderedDict[Path, SilhouetteRenderer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, mesh: str | Path) -> SilhouetteRenderer:
        """The renderer of the mesh file ``mesh`` (loaded with the cache's size limit)."""
        key = Path(mesh)
        with self._lock:
            renderer = self._renderers.get(key)
            if renderer is None:
                renderer = SilhouetteRenderer(load_mesh(key, max_bytes=self.max_mesh_bytes))
                self._renderers[key] = renderer
                if self.max_size is not None and len(self._renderers) > self.max_size:
                    self._renderers.popitem(last=False)
            else:
                self._renderers.move_to_end(key)
            return renderer
