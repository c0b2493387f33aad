"""DDL of the embedded SQLite store.

Documents keep their filterable fields as columns and the rest of the record as JSON.
Full-text search is an FTS5 index over title + text with external content (the text is
stored once, in `documents`), kept in step by triggers. Entities sit in their own table so
a per-entity filter or aggregation is an index lookup instead of a JSON scan.
"""

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    rowid        INTEGER PRIMARY KEY,  -- explicit so VACUUM keeps the ids the FTS index points at
    id           TEXT NOT NULL UNIQUE,
    published_at REAL NOT NULL,        -- epoch seconds, UTC
    source       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    topic        TEXT NOT NULL,
    sentiment    TEXT NOT NULL,
    score        REAL NOT NULL,
    dup_of       TEXT,
    title        TEXT,
    text         TEXT NOT NULL,
    body         TEXT NOT NULL         -- the rest of the record as JSON
);
CREATE INDEX IF NOT EXISTS documents_published ON documents(published_at, id);
CREATE INDEX IF NOT EXISTS documents_topic ON documents(topic, published_at);
CREATE INDEX IF NOT EXISTS documents_score ON documents(score, published_at);

CREATE TABLE IF NOT EXISTS document_entities (
    entity TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (entity, doc_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS document_entities_doc ON document_entities(doc_id);

CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
    title, text, content='documents', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS documents_fts_insert AFTER INSERT ON documents BEGIN
    INSERT INTO documents_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;
CREATE TRIGGER IF NOT EXISTS documents_fts_delete AFTER DELETE ON documents BEGIN
    INSERT INTO documents_fts(documents_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
END;
CREATE TRIGGER IF NOT EXISTS documents_fts_update AFTER UPDATE OF title, text ON documents BEGIN
    INSERT INTO documents_fts(documents_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
    INSERT INTO documents_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;

CREATE TABLE IF NOT EXISTS alerts (
    id         TEXT PRIMARY KEY,  -- scope + key + episode start
    updated_at REAL NOT NULL,
    seq        INTEGER NOT NULL,  -- the alert's `update`: counts up within an episode
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_updated ON alerts(updated_at);

CREATE TABLE IF NOT EXISTS labels (
    id     TEXT PRIMARY KEY,  -- document + analyst
    doc_id TEXT NOT NULL,
    at     REAL NOT NULL,
    body   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_at ON labels(at);
"""

UPSERT_DOCUMENT = """
INSERT INTO documents (id, published_at, source, kind, topic, sentiment, score, dup_of, title, text, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    published_at = excluded.published_at, source = excluded.source, kind = excluded.kind,
    topic = excluded.topic, sentiment = excluded.sentiment, score = excluded.score,
    dup_of = excluded.dup_of, title = excluded.title, text = excluded.text, body = excluded.body
"""

# An older copy arriving late (re-delivery) must not overwrite a newer one.
UPSERT_ALERT = """
INSERT INTO alerts (id, updated_at, seq, body) VALUES (?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at, seq = excluded.seq, body = excluded.body
WHERE excluded.seq >= alerts.seq
"""

UPSERT_LABEL = """
INSERT INTO labels (id, doc_id, at, body) VALUES (?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET at = excluded.at, body = excluded.body
WHERE excluded.at >= labels.at
"""
