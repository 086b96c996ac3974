"""CSRF protection for the pages' forms: Flask-WTF's ``CSRFProtect``, checked by the pages only.

Every form carries ``csrf_token`` (a token signed with the secret key and bound to the session);
a POST without a valid one is refused with 400 and changes nothing. Flask-WTF has no type
information, so its two names are wrapped here.
"""

from __future__ import annotations

from flask_wtf.csrf import CSRFError, CSRFProtect

csrf = CSRFProtect()

__all__ = ["CSRFError", "csrf", "protect"]


def protect() -> None:
    """Raise ``CSRFError`` (a 400) unless the request carries a valid token."""
    csrf.protect()
