"""Profiles and privacy: editing a profile, and who sees which detail of it."""
