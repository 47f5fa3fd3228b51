-- sluice store schema v3 (Postgres): persisted spend of USD budgets. One row
-- per scope (`tenant:acme`, `app:<id>`, `key:<id>`, `model:smart`,
-- `global`), budget period and UTC period start (Unix ms), holding the spend
-- in millionths of a dollar. Gateways add their deltas (an additive upsert),
-- so several instances never overwrite each other.

CREATE TABLE spend (
    scope        TEXT   NOT NULL,
    period       TEXT   NOT NULL CHECK (period IN ('day', 'week', 'month')),
    period_start BIGINT NOT NULL,
    micro_usd    BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, period, period_start)
);
CREATE INDEX spend_period_start ON spend (period_start);
