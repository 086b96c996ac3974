"""The pages people use: sign-in, the technician worklist, the patient card, the pharmacist review
queue and the GP's escalations, server-rendered with Jinja (hrm_fhir/web/templates/pages), plain CSS
(hrm_fhir/web/static) and no JavaScript. See docs/pages.md.

``bp`` is registered by ``create_app``; registering it configures the app's session (secret key,
lifetime, cookie flags: ``Secure`` outside the sandbox), the sign-in throttle and CSRF protection.
Without ``HRM_SECRET_KEY`` (outside tests) the pages
refuse to run: every page answers 503 saying why and what to set (the stylesheet is still served),
while the API and the scheduler carry on.
"""

from hrm_fhir.web.pages import actions, hooks, reports, session, views  # noqa: F401 - routes and hooks
from hrm_fhir.web.pages.blueprint import bp

__all__ = ["bp"]
