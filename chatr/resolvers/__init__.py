"""Thin glue: read the context, call a service. No SQL and no business rules here."""
