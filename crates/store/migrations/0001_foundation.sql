-- Tenants, projects, registered entities and credentials.
-- Every table of tenant data is keyed by tenant_id first.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    tier        TEXT NOT NULL,
    state       TEXT NOT NULL,
    labels      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE projects (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    labels      TEXT NOT NULL,
    domains     TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Project ids are one namespace: the API addresses a project by id alone.
CREATE UNIQUE INDEX projects_by_id ON projects (id);

CREATE TABLE entities (
    tenant_id   TEXT NOT NULL,
    project     TEXT NOT NULL,
    domain      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    digest      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    interface   TEXT NOT NULL,
    compiled    TEXT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, project, domain, kind, name, version),
    FOREIGN KEY (tenant_id, project) REFERENCES projects (tenant_id, id)
);
-- Versions of one entity in registration order; also serves "latest version".
CREATE UNIQUE INDEX entities_by_seq ON entities (tenant_id, project, domain, kind, name, seq);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    hash         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    tenant_id    TEXT,
    description  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX tokens_by_hash ON tokens (hash);
CREATE INDEX tokens_by_tenant ON tokens (tenant_id, created_at);
