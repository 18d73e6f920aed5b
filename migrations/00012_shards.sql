-- +goose Up
-- Per-tenant config shards (issue 12). The publisher compiles the tenants
-- whose change is not yet published, each into its own shard in Redis,
-- and records here what it did with each: so that a change of one tenant
-- costs in proportion to that tenant, and a tenant whose config fails
-- keeps its last good shard and sees why.
--
-- config_changes.generation is now each tenant's own counter:
-- outbox.MarkChanged bumps the changed tenant's row only (no platform-wide
-- row that every tenant's writes queue on). published_generation is the
-- generation the publisher last handled (published, or refused with an
-- error); the partial index holds only the tenants with work to do.
ALTER TABLE config_changes ADD COLUMN published_generation bigint NOT NULL DEFAULT 0;
CREATE INDEX config_changes_pending_idx ON config_changes (changed_at) WHERE generation > published_generation;

-- config_change_seq counts recorded changes platform-wide (a metric); a
-- sequence takes no row lock, so it serialises nothing.
CREATE SEQUENCE config_change_seq;
SELECT setval('config_change_seq', greatest((SELECT generation FROM config_state), 1));

-- config_shards is each tenant's shard in Redis (generation 0: none yet)
-- and the error of its newest refused change. previous_generation is the
-- superseded shard still readable for its grace; older ones are deleted.
-- config_state.published_generation is now the index sequence of the last
-- publish.
CREATE TABLE config_shards (
    tenant_id           uuid PRIMARY KEY,
    generation          bigint NOT NULL DEFAULT 0,
    previous_generation bigint NOT NULL DEFAULT 0,
    capability          int NOT NULL DEFAULT 0,
    config_bytes        int NOT NULL DEFAULT 0,
    seq                 bigint NOT NULL DEFAULT 0,
    published_at        timestamptz,
    error               text,
    error_generation    bigint,
    error_at            timestamptz
);

-- +goose Down
DROP TABLE config_shards;
DROP SEQUENCE config_change_seq;
DROP INDEX config_changes_pending_idx;
ALTER TABLE config_changes DROP COLUMN published_generation;
