"""The FHIR boundary: HTTP to the server, its auth, reading files, mapping to the domain,
the sweep's searches, upload and Bulk Data export."""
