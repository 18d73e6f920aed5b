-- +goose Up
-- Throttling settings: a plan's burst cap, the scope its limits count in
-- (each key, or all keys of a consumer under the plan) and its concurrency
-- limit; an API's own rate-limit ceiling over all its callers.
ALTER TABLE plans
    ADD COLUMN rate_limit_burst bigint NOT NULL DEFAULT 0 CHECK (rate_limit_burst >= 0),
    ADD COLUMN rate_limit_scope text NOT NULL DEFAULT 'key' CHECK (rate_limit_scope IN ('key', 'consumer')),
    ADD COLUMN concurrency bigint NOT NULL DEFAULT 0 CHECK (concurrency >= 0);
ALTER TABLE apis
    ADD COLUMN rate_limit_requests bigint NOT NULL DEFAULT 0 CHECK (rate_limit_requests >= 0),
    ADD COLUMN rate_limit_per_seconds bigint NOT NULL DEFAULT 0 CHECK (rate_limit_per_seconds >= 0),
    ADD COLUMN rate_limit_burst bigint NOT NULL DEFAULT 0 CHECK (rate_limit_burst >= 0);

-- usage_minutes holds per-minute rollups of proxied requests, written by the
-- usage aggregator from the workers' Redis stream. Ids are text ('' for none:
-- auth "none" has no key) and carry no foreign keys, so that usage survives
-- the deletion of the objects it describes and a batch never fails on them.
CREATE TABLE usage_minutes (
    tenant_id      uuid NOT NULL,
    minute         timestamptz NOT NULL,
    api_id         text NOT NULL,
    consumer_id    text NOT NULL DEFAULT '',
    key_id         text NOT NULL DEFAULT '',
    plan_id        text NOT NULL DEFAULT '',
    status_class   smallint NOT NULL CHECK (status_class BETWEEN 1 AND 5),
    requests       bigint NOT NULL,
    bytes_in       bigint NOT NULL,
    bytes_out      bigint NOT NULL,
    latency_us     bigint NOT NULL,
    -- latency_hist counts requests per bucket of proxycfg.LatencyBoundsMS.
    latency_hist   bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, minute, api_id, consumer_id, key_id, plan_id, status_class)
);
CREATE INDEX usage_minutes_key_idx ON usage_minutes (tenant_id, key_id, minute);
CREATE INDEX usage_minutes_consumer_idx ON usage_minutes (tenant_id, consumer_id, minute);

-- usage_hist_add adds two latency histograms element by element;
-- usage_hist_sum is its aggregate.
-- +goose StatementBegin
CREATE FUNCTION usage_hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE
        ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0) FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) ORDER BY i)
    END
$$;
-- +goose StatementEnd
CREATE AGGREGATE usage_hist_sum(bigint[]) (SFUNC = usage_hist_add, STYPE = bigint[]);

-- usage_entries records the stream entries already folded into
-- usage_minutes, in the same transaction, so that a redelivered entry (the
-- aggregator died between commit and XACK) or a batch a worker sent twice
-- (a retried XADD) is not counted twice. entry_id is 'b:<batch id>' for
-- entries that carry one (workers always do), else 'e:<stream entry id>'.
CREATE TABLE usage_entries (
    stream       text NOT NULL,
    entry_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, entry_id)
);
CREATE INDEX usage_entries_processed_idx ON usage_entries (processed_at);

-- +goose Down
DROP TABLE usage_entries;
DROP AGGREGATE usage_hist_sum(bigint[]);
DROP FUNCTION usage_hist_add(bigint[], bigint[]);
ALTER TABLE apis DROP COLUMN rate_limit_burst, DROP COLUMN rate_limit_per_seconds, DROP COLUMN rate_limit_requests;
ALTER TABLE plans DROP COLUMN concurrency, DROP COLUMN rate_limit_scope, DROP COLUMN rate_limit_burst;
DROP TABLE usage_minutes;
