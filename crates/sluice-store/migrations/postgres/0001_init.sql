-- sluice store schema v1 (Postgres): the revision counter, tenants, users,
-- apps, API keys, admin credentials and the audit log. Times are Unix
-- milliseconds, ids are sortable text, JSON is stored as text.

CREATE TABLE meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT  NOT NULL
);
INSERT INTO meta (id, revision) VALUES (1, 0);

CREATE TABLE tenants (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    tier       TEXT,
    policy     TEXT,
    source     TEXT   NOT NULL DEFAULT 'store' CHECK (source IN ('store', 'config')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX tenants_live_name ON tenants (name) WHERE deleted_at IS NULL;

CREATE TABLE users (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    role        TEXT   NOT NULL CHECK (role IN ('admin', 'tenant_admin', 'developer', 'auditor')),
    tenant_id   TEXT   REFERENCES tenants (id),
    disabled_at BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_name ON users (name);
CREATE INDEX users_tenant ON users (tenant_id);

CREATE TABLE apps (
    id            TEXT   PRIMARY KEY,
    tenant_id     TEXT   NOT NULL REFERENCES tenants (id),
    name          TEXT   NOT NULL,
    owner_user_id TEXT   REFERENCES users (id),
    policy        TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    deleted_at    BIGINT
);
CREATE UNIQUE INDEX apps_live_name ON apps (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX apps_owner ON apps (owner_user_id);

CREATE TABLE api_keys (
    id           TEXT   PRIMARY KEY,
    app_id       TEXT   NOT NULL REFERENCES apps (id),
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    name         TEXT   NOT NULL,
    prefix       TEXT   NOT NULL,
    hash         TEXT   NOT NULL,
    scopes       TEXT   NOT NULL DEFAULT '{}',
    policy       TEXT,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    rotated_from TEXT   REFERENCES api_keys (id),
    created_by   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE INDEX api_keys_app ON api_keys (app_id);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE admin_credentials (
    id         TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL REFERENCES users (id),
    prefix     TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX admin_credentials_hash ON admin_credentials (hash);
CREATE INDEX admin_credentials_user ON admin_credentials (user_id);

-- No foreign keys: the log outlives what it describes.
CREATE TABLE audit_log (
    id          TEXT   PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    actor_role  TEXT   NOT NULL,
    tenant_id   TEXT,
    action      TEXT   NOT NULL,
    target_type TEXT   NOT NULL,
    target_id   TEXT   NOT NULL,
    before      TEXT,
    after       TEXT
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_target ON audit_log (target_id, id);
CREATE INDEX audit_log_at ON audit_log (at);
