-- The journal, as the SQLite store keeps it: the same rows, the same bytes.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    command TEXT NOT NULL,
    status TEXT NOT NULL,
    root TEXT
);
CREATE TABLE events (
    run TEXT NOT NULL,
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run, chain, seq)
);
CREATE TABLE blobs (digest TEXT PRIMARY KEY, bytes BYTEA NOT NULL);
CREATE TABLE run_blobs (
    run TEXT NOT NULL,
    role TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (run, role, digest)
);
