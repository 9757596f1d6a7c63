"""The CAD model registry: its schema and the frame rule (:mod:`.schema`), and building
registries from category names or the release's CAD lists (:mod:`.build`)."""

from ls_backend.registry.schema import CATEGORIES, ModelEntry, Registry

__all__ = ["CATEGORIES", "ModelEntry", "Registry"]
