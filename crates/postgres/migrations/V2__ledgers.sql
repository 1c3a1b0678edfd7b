-- Budgets shared by the hosts of a run: one row per ledger (limits, what is spent, what is
-- held), one row per reservation in flight, named by its owner so that the holds of a step
-- abandoned by a worker that died can be released.
CREATE TABLE ledgers (
    id TEXT PRIMARY KEY,
    limit_tokens BIGINT,
    limit_usd BIGINT,
    limit_calls BIGINT,
    limit_fuel BIGINT,
    spent_tokens BIGINT NOT NULL DEFAULT 0,
    spent_usd BIGINT NOT NULL DEFAULT 0,
    spent_calls BIGINT NOT NULL DEFAULT 0,
    spent_fuel BIGINT NOT NULL DEFAULT 0,
    held_tokens BIGINT NOT NULL DEFAULT 0,
    held_usd BIGINT NOT NULL DEFAULT 0,
    held_calls BIGINT NOT NULL DEFAULT 0,
    held_fuel BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE holds (
    id BIGSERIAL PRIMARY KEY,
    ledger TEXT NOT NULL REFERENCES ledgers (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    tokens BIGINT NOT NULL,
    usd BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    fuel BIGINT NOT NULL
);
CREATE INDEX holds_by_owner ON holds (owner);
-- The outcome of each step a worker completed, written after its chains are committed and
-- before its message is acknowledged: a redelivered step that finds its outcome here is not
-- run again.
CREATE TABLE step_outcomes (
    run TEXT NOT NULL,
    step TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (run, step)
);
-- Events of step chains a worker left half-written when it died: kept for the record, out of
-- the run, whose step is run again from scratch.
CREATE TABLE abandoned_events (
    run TEXT NOT NULL,
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    abandoned_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
