-- Tenant quotas: limits on concurrent use (NULL: unlimited) and the fair-share weight.
CREATE TABLE tenant_quotas (
    tenant_id          TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    cpu_millis         BIGINT,
    memory_bytes       BIGINT,
    running_tasks      BIGINT,
    running_executions BIGINT,
    stored_bytes       BIGINT,
    weight             BIGINT,
    updated_at         BIGINT NOT NULL
);

-- Why a node that could run has not started (quota or executor capacity); cleared when it starts.
ALTER TABLE node_executions ADD COLUMN waiting_reason TEXT;
