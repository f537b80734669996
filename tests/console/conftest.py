from tenancy.factories import fast_argon2  # noqa: F401  (autouse)
