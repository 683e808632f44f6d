-- What the engine needs beyond executions: cache status per node, relaunch lineage, and the
-- data catalog (cached task outputs, never shared across projects or domains).

ALTER TABLE node_executions ADD COLUMN cache_status TEXT;
ALTER TABLE executions ADD COLUMN relaunch_of TEXT;
ALTER TABLE executions ADD COLUMN max_parallelism BIGINT;
-- How long the task's process ran (microseconds), apart from the platform's overhead.
ALTER TABLE attempts ADD COLUMN process_us BIGINT;
CREATE INDEX executions_by_launch_plan ON executions (tenant_id, project, domain, launch_plan, created_at);

CREATE TABLE catalog (
    tenant_id        TEXT NOT NULL,
    project          TEXT NOT NULL,
    domain           TEXT NOT NULL,
    task_name        TEXT NOT NULL,
    cache_version    TEXT NOT NULL,
    interface_digest TEXT NOT NULL,
    inputs_hash      TEXT NOT NULL,
    outputs          TEXT NOT NULL,
    source_execution TEXT NOT NULL,
    source_node      TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, project, domain, task_name, cache_version, interface_digest, inputs_hash)
);
