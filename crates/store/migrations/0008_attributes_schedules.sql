-- Execution attributes per level (project, project_domain, workflow, launch_plan); the parts a
-- level does not have are ''.
CREATE TABLE attributes (
    tenant_id  TEXT NOT NULL,
    project    TEXT NOT NULL,
    level      TEXT NOT NULL,
    domain     TEXT NOT NULL,
    name       TEXT NOT NULL,
    attributes TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, project, level, domain, name),
    FOREIGN KEY (tenant_id, project) REFERENCES projects (tenant_id, id)
);

-- The effective settings an execution was created with, and where each came from.
ALTER TABLE executions ADD COLUMN config TEXT;

-- Which version of a launch plan is active, and its schedule's progress: `next_fire_at` is the
-- earliest tick not yet fired (NULL: not scheduled).
CREATE TABLE launch_plan_states (
    tenant_id      TEXT NOT NULL,
    project        TEXT NOT NULL,
    domain         TEXT NOT NULL,
    name           TEXT NOT NULL,
    active_version TEXT,
    schedule       TEXT,
    anchor_at      BIGINT,
    next_fire_at   BIGINT,
    last_fire_at   BIGINT,
    last_outcome   TEXT,
    last_execution TEXT,
    fired          BIGINT NOT NULL DEFAULT 0,
    updated_at     BIGINT NOT NULL,
    updated_by     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, project, domain, name),
    FOREIGN KEY (tenant_id, project) REFERENCES projects (tenant_id, id)
);
-- The schedule loop looks for due ticks across tenants by time.
CREATE INDEX launch_plan_states_due ON launch_plan_states (next_fire_at);

-- Bytes each tenant keeps in blob storage, counted when an attempt finishes (in the same
-- transaction, so once), for the `stored_bytes` quota.
ALTER TABLE attempts ADD COLUMN stored_bytes BIGINT;
CREATE TABLE tenant_storage (
    tenant_id    TEXT PRIMARY KEY,
    stored_bytes BIGINT NOT NULL
);
