-- Workspaces as a workspace service declares them. `generation` counts changes of the declared
-- state; `observed_generation` is the last one fully converged, so pending work is
-- `observed_generation < generation` and an unchanged workspace needs no write.
CREATE TABLE workspaces (
    id                  TEXT PRIMARY KEY,
    spec                TEXT NOT NULL,
    state               TEXT NOT NULL,
    generation          BIGINT NOT NULL,
    observed_generation BIGINT NOT NULL,
    last_error          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX workspaces_pending ON workspaces (observed_generation, generation);
