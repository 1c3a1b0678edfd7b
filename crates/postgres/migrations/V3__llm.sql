-- The LLM layer's tables: idempotency keys and the completion cache, shared by every host.

-- An idempotency key's row is claimed (outcome NULL) by the call that reaches the provider
-- first, and holds its outcome once it ends.
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    outcome TEXT,
    -- Unix seconds: when the outcome was stored, or the claim taken.
    created BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The completion cache, as in the SQLite store: entries, counters, and per namespace the
-- log of changes each host's vector index is kept in step with.
CREATE TABLE cache_entries (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    namespace TEXT NOT NULL,
    query TEXT NOT NULL,
    vector BYTEA NOT NULL,
    response BYTEA NOT NULL,
    created BIGINT NOT NULL,
    used BIGINT NOT NULL
);
CREATE INDEX cache_entries_namespace ON cache_entries (namespace);
CREATE INDEX cache_entries_used ON cache_entries (used, id);
CREATE TABLE cache_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE cache_namespaces (
    namespace TEXT PRIMARY KEY,
    entries BIGINT NOT NULL,
    head BIGINT NOT NULL DEFAULT 0,
    trimmed BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE cache_changes (
    seq BIGSERIAL PRIMARY KEY,
    namespace TEXT NOT NULL,
    entry BIGINT NOT NULL
);
CREATE INDEX cache_changes_namespace ON cache_changes (namespace, seq);

-- Logs an entry added or removed. The namespace's lock is held until the transaction ends,
-- so that its changes commit in the order of their seq: an index saved as of a seq can then
-- never miss a change numbered before it that commits later.
CREATE FUNCTION cache_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed_namespace TEXT;
    changed_entry BIGINT;
    change BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        changed_namespace := NEW.namespace;
        changed_entry := NEW.id;
    ELSE
        changed_namespace := OLD.namespace;
        changed_entry := OLD.id;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('baton-cache:' || changed_namespace, 0));
    INSERT INTO cache_changes (namespace, entry) VALUES (changed_namespace, changed_entry)
        RETURNING seq INTO change;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO cache_namespaces (namespace, entries, head) VALUES (changed_namespace, 1, change)
            ON CONFLICT (namespace) DO UPDATE
            SET entries = cache_namespaces.entries + 1, head = excluded.head;
    ELSE
        UPDATE cache_namespaces SET entries = entries - 1, head = change
            WHERE namespace = changed_namespace;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER cache_entry_added AFTER INSERT ON cache_entries
    FOR EACH ROW EXECUTE FUNCTION cache_entry_changed();
CREATE TRIGGER cache_entry_removed AFTER DELETE ON cache_entries
    FOR EACH ROW EXECUTE FUNCTION cache_entry_changed();
