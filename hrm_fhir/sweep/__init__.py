"""One sweep: reconcile the server with the ledger, read, evaluate, plan and write back; its source
(paged or Bulk Data) and its launcher."""
