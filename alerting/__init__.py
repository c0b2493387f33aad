"""Spike detection on the negative share of scored documents, and notifications.

observations (fan-out per scope) → dedup (near-duplicate stories counted once) →
detector (event-time buckets, baseline, tests, episodes) → notifiers behind an outbox.
`replay` runs the same path offline.
"""
