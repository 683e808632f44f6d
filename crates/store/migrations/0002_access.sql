-- Roles (permissions over projects × domains) and their bindings to users, groups and
-- service accounts. tenant_id '' holds platform roles.

CREATE TABLE roles (
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    projects    TEXT NOT NULL,
    domains     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE role_bindings (
    tenant_id    TEXT NOT NULL,
    role         TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, role, subject_kind, subject),
    FOREIGN KEY (tenant_id, role) REFERENCES roles (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX role_bindings_by_subject ON role_bindings (tenant_id, subject_kind, subject);
