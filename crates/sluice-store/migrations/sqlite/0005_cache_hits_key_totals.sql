-- Cache hits, and usage by app and key without the model split.
--
-- `cache_hits` counts requests answered from the gateway's response cache
-- (no upstream call), in every rollup; the request log gets `cache_hit`.
-- (SQLite day tables are created by the writer; the store adds the column
-- to older ones when it opens them.)
--
-- `usage_daily_key_totals` sums `usage_daily_keys` over model and
-- provider: one row per (UTC day, tenant, app, key). Queries by app or key
-- that neither group nor filter by model read it, a fraction of the rows.

ALTER TABLE usage_hourly_models ADD COLUMN cache_hits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN cache_hits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN cache_hits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_keys ADD COLUMN cache_hits BIGINT NOT NULL DEFAULT 0;

CREATE TABLE usage_daily_key_totals (
    bucket        BIGINT NOT NULL,
    tenant        TEXT   NOT NULL,
    app           TEXT   NOT NULL,
    key_id        TEXT   NOT NULL,
    requests      BIGINT NOT NULL,
    errors_4xx    BIGINT NOT NULL,
    errors_5xx    BIGINT NOT NULL,
    tokens_in     BIGINT NOT NULL,
    tokens_out    BIGINT NOT NULL,
    cache_read    BIGINT NOT NULL,
    cache_write   BIGINT NOT NULL,
    reasoning     BIGINT NOT NULL,
    cost_micro    BIGINT NOT NULL,
    latency_us    BIGINT NOT NULL,
    upstream_us   BIGINT NOT NULL,
    lat_00        BIGINT NOT NULL,
    lat_01        BIGINT NOT NULL,
    lat_02        BIGINT NOT NULL,
    lat_03        BIGINT NOT NULL,
    lat_04        BIGINT NOT NULL,
    lat_05        BIGINT NOT NULL,
    lat_06        BIGINT NOT NULL,
    lat_07        BIGINT NOT NULL,
    lat_08        BIGINT NOT NULL,
    lat_09        BIGINT NOT NULL,
    lat_10        BIGINT NOT NULL,
    lat_11        BIGINT NOT NULL,
    lat_12        BIGINT NOT NULL,
    lat_13        BIGINT NOT NULL,
    lat_14        BIGINT NOT NULL,
    lat_15        BIGINT NOT NULL,
    lat_16        BIGINT NOT NULL,
    lat_17        BIGINT NOT NULL,
    lat_18        BIGINT NOT NULL,
    lat_19        BIGINT NOT NULL,
    lat_20        BIGINT NOT NULL,
    lat_21        BIGINT NOT NULL,
    lat_22        BIGINT NOT NULL,
    lat_23        BIGINT NOT NULL,
    lat_24        BIGINT NOT NULL,
    cache_hits    BIGINT NOT NULL,
    PRIMARY KEY (bucket, tenant, app, key_id)
);
CREATE INDEX usage_daily_key_totals_tenant ON usage_daily_key_totals (tenant, bucket);

-- What was summed before this version.
INSERT INTO usage_daily_key_totals (bucket, tenant, app, key_id, requests, errors_4xx, errors_5xx, tokens_in, tokens_out, cache_read, cache_write, reasoning, cost_micro, latency_us, upstream_us, lat_00, lat_01, lat_02, lat_03, lat_04, lat_05, lat_06, lat_07, lat_08, lat_09, lat_10, lat_11, lat_12, lat_13, lat_14, lat_15, lat_16, lat_17, lat_18, lat_19, lat_20, lat_21, lat_22, lat_23, lat_24, cache_hits)
SELECT bucket, tenant, app, key_id, SUM(requests), SUM(errors_4xx), SUM(errors_5xx), SUM(tokens_in), SUM(tokens_out), SUM(cache_read), SUM(cache_write), SUM(reasoning), SUM(cost_micro), SUM(latency_us), SUM(upstream_us), SUM(lat_00), SUM(lat_01), SUM(lat_02), SUM(lat_03), SUM(lat_04), SUM(lat_05), SUM(lat_06), SUM(lat_07), SUM(lat_08), SUM(lat_09), SUM(lat_10), SUM(lat_11), SUM(lat_12), SUM(lat_13), SUM(lat_14), SUM(lat_15), SUM(lat_16), SUM(lat_17), SUM(lat_18), SUM(lat_19), SUM(lat_20), SUM(lat_21), SUM(lat_22), SUM(lat_23), SUM(lat_24), SUM(cache_hits)
FROM usage_daily_keys GROUP BY bucket, tenant, app, key_id;
