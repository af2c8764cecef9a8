"""Presence: online, away and offline across tabs, devices and instances."""
