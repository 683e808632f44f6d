-- Executions, their node executions and every attempt of every node.

CREATE TABLE executions (
    tenant_id        TEXT NOT NULL,
    project          TEXT NOT NULL,
    domain           TEXT NOT NULL,
    name             TEXT NOT NULL,
    launch_plan      TEXT,
    workflow_name    TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    inputs           TEXT NOT NULL,
    phase            TEXT NOT NULL,
    outputs          TEXT,
    error            TEXT,
    abort_requested  TEXT,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    PRIMARY KEY (tenant_id, project, domain, name),
    FOREIGN KEY (tenant_id, project) REFERENCES projects (tenant_id, id)
);
CREATE INDEX executions_by_time ON executions (tenant_id, project, domain, created_at);
-- The engine resumes what has not finished.
CREATE INDEX executions_unfinished ON executions (finished_at);

CREATE TABLE node_executions (
    tenant_id   TEXT NOT NULL,
    project     TEXT NOT NULL,
    domain      TEXT NOT NULL,
    execution   TEXT NOT NULL,
    node        TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    phase       TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    outputs     TEXT,
    error       TEXT,
    started_at  BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (tenant_id, project, domain, execution, node),
    FOREIGN KEY (tenant_id, project, domain, execution) REFERENCES executions (tenant_id, project, domain, name)
);

CREATE TABLE attempts (
    tenant_id         TEXT NOT NULL,
    project           TEXT NOT NULL,
    domain            TEXT NOT NULL,
    execution         TEXT NOT NULL,
    node              TEXT NOT NULL,
    attempt           BIGINT NOT NULL,
    phase             TEXT NOT NULL,
    error_kind        TEXT,
    message           TEXT,
    exit_code         BIGINT,
    log_path          TEXT NOT NULL,
    cpu_ms            BIGINT,
    peak_memory_bytes BIGINT,
    started_at        BIGINT NOT NULL,
    finished_at       BIGINT,
    PRIMARY KEY (tenant_id, project, domain, execution, node, attempt),
    FOREIGN KEY (tenant_id, project, domain, execution, node) REFERENCES node_executions (tenant_id, project, domain, execution, node)
);
