"""Silhouettes of poses near an anchor pose, ray cast only near the anchor's outline.

Between two nearby poses a pixel can change only where the outline passes: within the
displacement bound ``D`` (pixels) of the moving model. :class:`OutlineBand` finds the
pixels about an anchor silhouette within a chessboard distance of its outline (its inside
pixels with an outside 4-neighbour: every 2x2 cell of pixel centres that the true outline
crosses holds one, so the outline lies within distance 1 of them);
:meth:`OutlineBand.render` re-casts only the pixels within ``ceil(1.25 D + 0.25) + 1`` of
them and keeps the anchor's value elsewhere.
``D`` is measured on the convex hull's vertices (widened by 25 % and 0.25 px, since points
between them can move a little further under perspective).

The result equals the full render except where a part or gap thinner than a pixel, which
no pixel centre of the anchor saw, reaches a pixel centre away from the outline (hairline
cracks between a CAD model's parts do this now and then: a few pixels). Callers that
report an IoU render the final pose in full.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .masks import border_pixels
from .pose import Pose
from .render import SilhouetteRenderer, Window, crop


class OutlineBand:
    """The silhouette ``anchor`` of ``pose`` (a :class:`Window`) in a frame ``max_radius``
    pixels larger than its bounding window (clipped to the image), with its outline pixels
    (``border``)."""

    def __init__(self, renderer: SilhouetteRenderer, pose: Pose, anchor: Window, max_radius: int = 6):
        self.renderer = renderer
        self.pose = pose
        self.hull = renderer.hull_pixels(pose)
        self.max_radius = max_radius
        x0, y0, x1, y1 = renderer.window(pose)  # holds the anchor's silhouette
        self.x0, self.y0 = max(0, x0 - max_radius), max(0, y0 - max_radius)
        x1, y1 = min(pose.width, x1 + max_radius), min(pose.height, y1 + max_radius)
        self.mask = crop(anchor, self.x0, self.y0, x1 - self.x0, y1 - self.y0)
        self.border = border_pixels(self.mask)
        self._pixels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def pixels(self, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """(ys, xs) in this band's frame of the pixels within chessboard distance ``radius``
        of the outline (a border pixel in their ``2 radius + 1`` square), in raster order
        (coherent rays cast faster)."""
        if radius not in self._pixels:
            if self.border.any():
                near = ndimage.maximum_filter(self.border, size=2 * radius + 1, mode="constant", cval=False)
            else:  # no outline was seen (a silhouette between pixel centres): any pixel may change
                near = np.ones_like(self.border)
            self._pixels[radius] = np.nonzero(near)
        return self._pixels[radius]

    def radius(self, pose: Pose) -> int | None:
        """Band half-width (px) covering every pixel that can differ at ``pose``, from ``D``,
        the largest move of a convex-hull vertex; None when it exceeds ``max_radius`` or a
        hull vertex is behind a camera."""
        hull = self.renderer.hull_pixels(pose)
        if hull is None or self.hull is None:
            return None
        shift = float(np.sqrt(((hull - self.hull) ** 2).sum(axis=1).max()))
        radius = math.ceil(1.25 * shift + 0.25) + 1
        return radius if radius <= self.max_radius else None

    def render(self, pose: Pose) -> Window | None:
        """The silhouette at ``pose`` in this band's frame, or None when ``pose`` is too far
        from the anchor (see :meth:`radius`); ``pose`` must have the anchor's image size."""
        radius = self.radius(pose)
        if radius is None:
            return None
        ys, xs = self.pixels(radius)
        out = self.mask.copy()
        out[ys, xs] = self.renderer.cast_pixels(pose, xs + self.x0, ys + self.y0)
        return Window(out, self.x0, self.y0)


class AnchoredSilhouettes:
    """Silhouettes of a search's candidates: cast about the outline of the last anchored pose
    where the move is small enough (:meth:`OutlineBand.render`), else in their bounding box
    (:meth:`.render.SilhouetteRenderer.render_window`). A search anchors the poses it moves to."""

    def __init__(self, renderer: SilhouetteRenderer):
        self.renderer = renderer
        self.band: OutlineBand | None = None

    def render(self, pose: Pose) -> Window:
        window = self.band.render(pose) if self.band is not None else None
        return self.renderer.render_window(pose) if window is None else window

    def anchor(self, pose: Pose, window: Window) -> None:
        """Cast later candidates about ``pose``'s outline (``window``: its silhouette)."""
        self.band = OutlineBand(self.renderer, pose, window)

    def reset(self) -> None:
        """Forget the anchor: the next candidate is cast in its bounding box."""
        self.band = None
