"""Stores for scored documents, alerts and analyst labels (one interface, several backends)."""
