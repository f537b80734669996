"""Personal information (个人信息保护, PIPL): the consent ledger and the marketing opt-out, data-subject
requests (export, delete) carried out through every domain's `privacy` module, and retention with a
scheduled purge. Below compliance and the customer domains in the dependency order: they call it,
it never calls them (see `service`)."""
