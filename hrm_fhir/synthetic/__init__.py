"""Synthetic data for demos, tests and benchmarks, never the service: a GP practice's FHIR
resources (``practice``, built from ``plans``, ``groups``, ``patient``, ``elements`` and
``export``) and a year of its monitoring programme in the ledger (``history``).
"""
