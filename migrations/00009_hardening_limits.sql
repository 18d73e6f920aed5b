-- +goose Up
-- Hardening (issue 10) and scale (issue 12): per-tenant limits, custom
-- domain claims that cannot block a domain forever, and the version of the
-- API key digest key.

-- tenant_limits hold the limits the operator set for one tenant
-- (PUT /v1/tenants/{id}/limits): a JSON object from limit name to value;
-- limits it leaves out take the operator's defaults (TOLLGATE_LIMIT_*).
CREATE TABLE tenant_limits (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    overrides  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(overrides) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Counting a tenant's working keys (limit keys) on every key issued.
CREATE INDEX keys_active_tenant_idx ON keys (tenant_id) WHERE status = 'active';

-- Custom domains: a host name is unique among verified domains only, so an
-- unverified claim blocks nobody; a tenant that proves the domain takes it
-- over (other tenants' unverified claims of it are removed), unverified
-- claims expire, and verified ones are re-checked (checked_at: the last
-- check; check_misses: the checks in a row that did not find the record).
DROP INDEX custom_domains_domain_key;
CREATE UNIQUE INDEX custom_domains_verified_key ON custom_domains (lower(domain)) WHERE verified_at IS NOT NULL;
CREATE UNIQUE INDEX custom_domains_tenant_domain_key ON custom_domains (tenant_id, lower(domain));
ALTER TABLE custom_domains ADD COLUMN checked_at timestamptz,
    ADD COLUMN check_misses int NOT NULL DEFAULT 0;
UPDATE custom_domains SET checked_at = verified_at WHERE verified_at IS NOT NULL;
CREATE INDEX custom_domains_unverified_idx ON custom_domains (created_at) WHERE verified_at IS NULL;
CREATE INDEX custom_domains_recheck_idx ON custom_domains (checked_at) WHERE verified_at IS NOT NULL;

-- secret_versions records which key the API key and admin token digests of
-- this installation use (services/secrets): version 0 is the raw
-- TOLLGATE_SECRET (every installation that already holds tenants, so that
-- their stored digests stay valid), version 1 a key derived from it with
-- HKDF, which proxy workers can be given without the secret itself (new
-- installations). One row.
CREATE TABLE secret_versions (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    digest_version smallint NOT NULL CHECK (digest_version IN (0, 1)),
    created_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO secret_versions (digest_version)
SELECT CASE WHEN EXISTS (SELECT 1 FROM tenants) THEN 0 ELSE 1 END;

-- +goose Down
DROP TABLE secret_versions;
DROP INDEX custom_domains_recheck_idx;
DROP INDEX custom_domains_unverified_idx;
ALTER TABLE custom_domains DROP COLUMN check_misses, DROP COLUMN checked_at;
DROP INDEX custom_domains_tenant_domain_key;
DROP INDEX custom_domains_verified_key;
-- Only one claim per host name fits the old index: keep the verified one,
-- else the oldest.
DELETE FROM custom_domains d USING custom_domains o
WHERE lower(d.domain) = lower(o.domain) AND d.id <> o.id
  AND (d.verified_at IS NULL AND (o.verified_at IS NOT NULL OR (o.created_at, o.id) < (d.created_at, d.id)));
CREATE UNIQUE INDEX custom_domains_domain_key ON custom_domains (lower(domain));
DROP INDEX keys_active_tenant_idx;
DROP TABLE tenant_limits;
