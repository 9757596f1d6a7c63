"""finepose's Label Studio side: the ML backend, task/prediction conversion, dataset tools."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("finepose")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.2.0"
