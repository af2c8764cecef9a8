"""Business rules and permission checks. Imports no GraphQL; every function is keyword-only."""
