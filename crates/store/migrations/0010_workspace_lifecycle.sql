-- Workspace retirement, workspace events and scoped platform service accounts.
--
-- A retired workspace moves through `phase` (revoked → aborted → exported → retained) and is
-- removed once `purge_after` has passed; each phase is recorded when it is done, so a
-- restarted server continues where the last one stopped.
ALTER TABLE workspaces ADD COLUMN phase TEXT;
ALTER TABLE workspaces ADD COLUMN deleted_at BIGINT;
ALTER TABLE workspaces ADD COLUMN purge_after BIGINT;
CREATE INDEX workspaces_by_state ON workspaces (state, id);

-- Outcomes for the workspace service, written in the same transaction as the change they
-- report and deleted once delivered (CloudEvents over a webhook, retried with back-off).
CREATE TABLE workspace_events (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    type            TEXT NOT NULL,
    data            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT
);
CREATE INDEX workspace_events_due ON workspace_events (next_attempt_at, created_at);
CREATE INDEX workspace_events_by_workspace ON workspace_events (workspace_id, id);

-- A platform service account holds only the platform permissions listed here (JSON array of
-- `resource:action` patterns), e.g. a workspace service with `["workspaces:*"]`.
ALTER TABLE tokens ADD COLUMN permissions TEXT;
