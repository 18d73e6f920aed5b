-- +goose Up
-- Scale (issue 12): which tenant's gateway configuration changed.
-- outbox.MarkChanged sets the changed tenant's row, in the transaction of
-- the change, to the generation it bumped config_state to. The publisher
-- still compiles the whole platform on config_state; a publisher that
-- compiles per tenant (shards) compiles the tenants whose generation here
-- is past the one it last published for them.
--
-- One row per tenant, so that one tenant's changes only lock its own row.
-- No foreign key: a deleted tenant's row stays, for the publisher to see
-- that the tenant's shard must go.
CREATE TABLE config_changes (
    tenant_id  uuid PRIMARY KEY,
    generation bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX config_changes_generation_idx ON config_changes (generation);

-- Every existing tenant counts as changed at the current generation, so
-- that the first per-tenant publish compiles each of them once.
INSERT INTO config_changes (tenant_id, generation)
SELECT t.id, s.generation FROM tenants t CROSS JOIN config_state s;

-- +goose Down
DROP TABLE config_changes;
