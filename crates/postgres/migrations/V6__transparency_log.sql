-- The transparency log of signed runs, as the SQLite store keeps it: each signed run's
-- envelope a leaf, the perfect subtrees its appending completed, and the checkpoints the
-- hosts signed. Appends take a lock, so hosts sharing the store number their leaves in turn.
CREATE TABLE tlog_leaves (
    idx BIGINT PRIMARY KEY,
    run TEXT NOT NULL UNIQUE,
    hash BYTEA NOT NULL
);
CREATE TABLE tlog_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE tlog_checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL
);
