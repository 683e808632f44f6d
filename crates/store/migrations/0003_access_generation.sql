-- A counter bumped in every transaction that changes projects, roles or bindings, so that
-- every server sharing this database knows when its in-memory access index is stale.
CREATE TABLE access_generation (
    id    BIGINT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO access_generation (id, value) VALUES (1, 0);
