"""The HTTP API: one module per blueprint, their schemas, auth and the OpenAPI document."""
