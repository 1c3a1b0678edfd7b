-- The cache of pure calls: the events of a call that reached nothing outside its sandbox and
-- read no clock or randomness, by the hash of its component's digest and its input, with the
-- run that made it. Hosts sharing the store serve each other's.
CREATE TABLE pure_calls (
    key TEXT PRIMARY KEY,
    run TEXT NOT NULL,
    events TEXT NOT NULL,
    created BIGINT NOT NULL
);
