-- The audit trail: append-only, one hash chain per tenant ('' for platform-level records).
-- Each record's hash covers the previous record's hash, its sequence number and its content,
-- so an edited, inserted or removed record breaks the chain. `audit_heads` holds each chain's
-- last sequence number and hash (and, after retention pruning, the anchor the kept part
-- starts from).
CREATE TABLE audit_events (
    tenant_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    time       BIGINT NOT NULL,
    request_id TEXT,
    actor      TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    groups     TEXT NOT NULL,
    project    TEXT,
    domain     TEXT,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    status     BIGINT,
    source     TEXT,
    details    TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_events_by_time ON audit_events (tenant_id, time);
CREATE INDEX audit_events_all_by_time ON audit_events (time);

CREATE TABLE audit_heads (
    tenant_id   TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    pruned_seq  BIGINT NOT NULL DEFAULT 0,
    pruned_hash TEXT NOT NULL DEFAULT ''
);

-- API calls per tenant, project and hour, and who was active: flushed from memory every few
-- seconds by adding to the row.
CREATE TABLE usage_api_calls (
    tenant_id    TEXT NOT NULL,
    project      TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    calls        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, window_start, project)
);
CREATE TABLE usage_active_users (
    tenant_id    TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, window_start, actor)
);
-- Usage of attempts by when they finished (tenant first).
CREATE INDEX attempts_by_finish ON attempts (tenant_id, finished_at);
CREATE INDEX executions_by_created ON executions (tenant_id, created_at);
