"""The command line: ``hrm-fhir`` (``main.py``) and one module per command group."""
