"""The web service's shared parts below the blueprints: runtime state and the request's session.

``hrm_fhir/web/app.py`` assembles the app; ``api/`` and ``pages/`` import from here, never from it.
"""
