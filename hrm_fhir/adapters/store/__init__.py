"""The service's own database: engine and migrations, ORM records, the ledger's queries, users and
their credentials."""
