"""finepose's errors outside :mod:`geometry`: one base class carrying its HTTP status.

The backend answers a :class:`FineposeError` with ``status`` and ``{"error": message}``; the
CLI prints the message and exits with status 2. Geometry's errors
(:class:`geometry.errors.GeometryError`: pose, mesh, mask, keypoint, frame) are bad input too
and answer 422. Messages name what is wrong in the caller's terms (a task field, a setting,
a file the user gave), never the server's own paths.
"""

from __future__ import annotations

from geometry.errors import GeometryError


class FineposeError(Exception):
    """Base class: something finepose cannot do with the input or configuration it was given."""

    status = 500


class BadRequest(FineposeError, ValueError):
    """The request itself is unusable (not JSON, not an object, too large)."""

    status = 400


class ConfigError(FineposeError, ValueError):
    """A setting (environment variable) is missing or malformed; the message names it. A
    request that needs it answers 503: the service is not set up for it."""

    status = 503


class CredentialsError(FineposeError):
    """Label Studio credentials are missing or refused; the message names the variable."""

    status = 503


class StudioUnreachable(CredentialsError):
    """Credentials that could not be checked: Label Studio did not answer the exchange."""


class LinkError(FineposeError):
    """An editor link that is forged, expired, or made for another task or project."""

    status = 403


class SignInRequired(FineposeError):
    """An editor save without a signed-in annotator for the task's project."""

    status = 401


class AccessRefused(FineposeError):
    """Label Studio refused an annotator's own token, or does not let them see the project."""

    status = 403


class TaskError(FineposeError, ValueError):
    """A task, annotation or interactive context finepose cannot read; names the field."""

    status = 422


class LabelConfigError(FineposeError, ValueError):
    """The project's labeling config cannot be used by finepose; says what is missing."""

    status = 422


class MediaError(FineposeError, ValueError):
    """A task's media URL that is refused or cannot be fetched or read."""

    status = 422


class MediaUnavailable(MediaError):
    """A media server that did not answer: connection refused or broken, or an HTTP 5xx; a
    later try may succeed (``finepose prelabel`` retries such tasks on any re-run)."""


class UpstreamTimeout(MediaError):
    """An outbound request (media, Label Studio) took longer than its timeout."""

    status = 504


class RegistryError(FineposeError, ValueError):
    """The model registry is malformed (an entry without a usable mesh, frame or category)."""

    status = 422


class UnknownModelError(RegistryError):
    """A task names a model id that the registry does not hold."""

    status = 404


class WeightsError(FineposeError, RuntimeError):
    """Segmentation weights that cannot be used: unreadable, corrupt, wrong hash or wrong model."""

    status = 503


class MissingWeightsError(WeightsError):
    """Segmentation weights that are not there; the message says which file goes where."""


class DataError(FineposeError, ValueError):
    """An offline tool's input (pose set, manifest, dataset, study key) that cannot be used."""

    status = 422


class UpstreamError(FineposeError):
    """Label Studio (or another service finepose calls) is unreachable or refused the call; the
    message names its host and the reason, never its credentials."""

    status = 502


class NotInStudio(FineposeError, ValueError):
    """Label Studio has no such project, task or user (or the token may not see it)."""

    status = 404


class StorageError(FineposeError):
    """The backend's own folder (``MODEL_DIR``) cannot be written: full or read-only."""

    status = 503


def http_status(exc: BaseException) -> int | None:
    """The HTTP status finepose answers ``exc`` with, or None for an unexpected error (500)."""
    if isinstance(exc, FineposeError):
        return exc.status
    if isinstance(exc, GeometryError):
        return 422
    return None

