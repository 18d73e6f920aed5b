-- +goose Up
-- Data-plane settings (issue 3): more balancing algorithms; per upstream the
-- consistent-hash key, passive health (outlier detection), retries and the
-- per-target circuit breaker; per API the JWT settings, body size limit, Host
-- header handling and connect/read timeouts. Both groups are one jsonb
-- column each, validated by services/catalog and compiled into the snapshot
-- as they are (proxycfg.Upstream / proxycfg.API fields of the same names).
ALTER TABLE upstreams DROP CONSTRAINT upstreams_algorithm_check;
ALTER TABLE upstreams ADD CONSTRAINT upstreams_algorithm_check
    CHECK (algorithm IN ('round_robin', 'weighted', 'least_conn', 'consistent_hash', 'random'));
ALTER TABLE upstreams ADD COLUMN dataplane jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE apis ADD COLUMN dataplane jsonb NOT NULL DEFAULT '{}'::jsonb;

-- +goose Down
ALTER TABLE apis DROP COLUMN dataplane;
ALTER TABLE upstreams DROP COLUMN dataplane;
UPDATE upstreams SET algorithm = 'round_robin' WHERE algorithm NOT IN ('round_robin', 'weighted');
ALTER TABLE upstreams DROP CONSTRAINT upstreams_algorithm_check;
ALTER TABLE upstreams ADD CONSTRAINT upstreams_algorithm_check CHECK (algorithm IN ('round_robin', 'weighted'));
