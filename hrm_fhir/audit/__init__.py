"""The programme's evidence: the monthly audit summary and the per-patient evidence pack."""
