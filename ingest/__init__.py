"""Ingest: everything that writes documents to the raw topic.

producer (kafka-python, keyed by story) · replay (JSONL/CSV files) · seen (persistent
seen-set) · http (polite fetching) · feeds (RSS/Atom) · reviews (JSON/HTML review pages)
· push (HTTP endpoint) · config + runner (`finsentry scrape`) · cli (Typer commands).
"""
