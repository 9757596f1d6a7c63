"""Who saves from the editor: the annotator, proven once with their own Label Studio token.

The first time, an annotator pastes their own Personal Access Token into the editor page
(Label Studio: Account & Settings -> Personal Access Token -> Create). The backend checks it
once (:func:`ls_backend.studio.client.member_of`: Label Studio accepts it, and lets that
user open the task's project) and answers a cookie ``finepose_annotator``: the HMAC-signed
(itsdangerous, :func:`.links.editor_key`) ``{"user", "email", "projects", "exp"}``,
HttpOnly, SameSite=Strict, Secure over https, valid :data:`SESSION_SECONDS`. The token is
dropped after the check: neither the backend nor the browser keeps it. Signing in on a
task of another project adds that project. The check is made at sign-in only: a person
removed from the organization afterwards keeps the session until it expires.

A save needs a cookie naming the task's project (else 401, :class:`SignInRequired`); the
annotation is created with the cookie's user as ``completed_by``, so Label Studio credits
the person, not the backend's token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from ls_backend.editor.links import editor_key
from ls_backend.errors import SignInRequired

COOKIE = "finepose_annotator"
SESSION_SECONDS = 12 * 3600  # a working day: then the annotator pastes their token again
_SALT = "finepose-annotator"
SIGN_IN = ("sign in to save: paste your own Label Studio Personal Access Token (Account & Settings -> "
           "Personal Access Token -> Create) into the editor once, so that Label Studio credits your saves to you")


@dataclass(frozen=True)
class Annotator:
    """A Label Studio user checked by their own token, and the projects checked for them."""

    user: int
    email: str
    projects: tuple[int, ...]
    expires: float

    def public(self) -> dict:
        """What the page shows."""
        return {"id": self.user, "email": self.email}


class AnnotatorSessions:
    """Makes and reads the signed ``finepose_annotator`` cookie."""

    def __init__(self, settings, now=time.time):
        self._serializer = URLSafeSerializer(editor_key(settings), salt=_SALT)
        self._now = now

    def read(self, cookies) -> Annotator | None:
        """The annotator of a request's cookies, or None (none, forged or expired)."""
        value = cookies.get(COOKIE)
        if not value:
            return None
        try:
            data = self._serializer.loads(value)
            found = Annotator(int(data["user"]), str(data["email"]), tuple(int(p) for p in data["projects"]),
                              float(data["exp"]))  # fmt: skip
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        return found if found.expires > self._now() else None

    def signed_in_for(self, cookies, project: int) -> Annotator | None:
        """The annotator signed in for ``project``, or None."""
        found = self.read(cookies)
        return found if found is not None and int(project) in found.projects else None

    def require(self, cookies, project: int) -> Annotator:
        """The annotator signed in for ``project``; :class:`SignInRequired` (401) otherwise."""
        found = self.signed_in_for(cookies, project)
        if found is None:
            raise SignInRequired(SIGN_IN)
        return found

    def signed_in(self, cookies, user: dict, project: int) -> Annotator:
        """The annotator after ``user`` (Label Studio's whoami) was checked for ``project``;
        projects already checked for the same user are kept."""
        earlier = self.read(cookies)
        projects = set(earlier.projects) if earlier is not None and earlier.user == int(user["id"]) else set()
        projects.add(int(project))
        return Annotator(int(user["id"]), str(user.get("email") or ""), tuple(sorted(projects)),
                         self._now() + SESSION_SECONDS)  # fmt: skip

    def set_cookie(self, response, annotator: Annotator, secure: bool, path: str = "/editor") -> None:
        """``path``: the editor's path as the browser sees it; ``secure``: the page is on https."""
        value = self._serializer.dumps({"user": annotator.user, "email": annotator.email,
                                        "projects": list(annotator.projects), "exp": int(annotator.expires)})  # fmt: skip
        response.set_cookie(COOKIE, value, max_age=SESSION_SECONDS, httponly=True, samesite="Strict", secure=secure,
                            path=path)  # fmt: skip

    def payload(self, value: str) -> dict:
        """What a cookie value holds (for tests and inspection); BadSignature when forged."""
        return self._serializer.loads(value)

    @staticmethod
    def clear_cookie(response, path: str = "/editor") -> None:
        response.delete_cookie(COOKIE, path=path, httponly=True, samesite="Strict")
