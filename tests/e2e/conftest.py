"""The end-to-end tests' Label Studio servers, registered once for the folder.

A fixture imported into each test module is a separate fixture per module: a session-scoped
server imported by 13 modules started 13 servers (~14 s and ~330 MB each), all alive until
the session's end. Registered here, each kind starts once per pytest session.
"""

from tests.support.label_studio import label_studio, label_studio_legacy  # noqa: F401  (fixtures)
