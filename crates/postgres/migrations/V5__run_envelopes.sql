-- The host's signed statement over each ended run (a DSSE envelope, JSON), as SQLite keeps it.
CREATE TABLE run_envelopes (
    run TEXT PRIMARY KEY,
    envelope TEXT NOT NULL
);
