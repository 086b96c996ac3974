"""The edges: ``fhir`` talks to the FHIR server and reads FHIR files, ``store`` is the service's own
database. Neither imports anything above ``rules``."""
