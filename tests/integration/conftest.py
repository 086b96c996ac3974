"""The integration tests' fixtures, ``fhir_base`` (a real HAPI FHIR server) and ``run_id``, live in
tests/conftest.py, so the browser tests (tests/browser) share the same server."""
