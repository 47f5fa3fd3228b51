-- sluice store schema v2 (SQLite): subscriptions of apps to models and APIs,
-- and the audit log made append-only by the database itself.

CREATE TABLE subscriptions (
    id           TEXT   PRIMARY KEY,
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    app_id       TEXT   NOT NULL REFERENCES apps (id),
    target       TEXT   NOT NULL,
    state        TEXT   NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'revoked')),
    requested_by TEXT   NOT NULL,
    requested_at BIGINT NOT NULL,
    decided_by   TEXT,
    decided_at   BIGINT,
    note         TEXT
);
CREATE UNIQUE INDEX subscriptions_app_target ON subscriptions (app_id, target);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
