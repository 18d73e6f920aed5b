-- +goose Up
-- Idempotency-Key on POST /v1/... (issue 13): the first 2xx answer of a
-- request, kept for 24 hours so that a retry with the same key gets it again
-- instead of making a duplicate. Keys are per tenant (scope = the tenant's
-- id) or the operator's (scope = 'operator', for POST /v1/tenants).
-- request_hash digests the first request's method, path and body: the same
-- key with another request is refused. status is null while the first
-- request runs. body never holds a secret: the answers that show one (a
-- key, an admin token) are kept with it null.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,
    request_hash text NOT NULL,
    status       int,
    content_type text NOT NULL DEFAULT '',
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
