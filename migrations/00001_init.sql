-- +goose Up
CREATE TABLE tenants (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    slug       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_tokens (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL,
    digest     text NOT NULL UNIQUE,
    prefix     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX admin_tokens_tenant_idx ON admin_tokens (tenant_id, created_at, id);

CREATE TABLE upstreams (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL,
    algorithm    text NOT NULL CHECK (algorithm IN ('round_robin', 'weighted')),
    health_check jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE INDEX upstreams_tenant_idx ON upstreams (tenant_id, created_at, id);

CREATE TABLE targets (
    upstream_id uuid NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,
    position    int NOT NULL,
    url         text NOT NULL,
    weight      int NOT NULL CHECK (weight >= 1),
    PRIMARY KEY (upstream_id, position)
);

CREATE TABLE apis (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL,
    slug            text NOT NULL,
    base_path       text NOT NULL,
    upstream_id     uuid NOT NULL,
    auth            text NOT NULL CHECK (auth IN ('key', 'jwt', 'none')),
    strip_base_path boolean NOT NULL DEFAULT true,
    timeout_ms      int NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CONSTRAINT apis_tenant_slug_key UNIQUE (tenant_id, slug),
    CONSTRAINT apis_tenant_base_path_key UNIQUE (tenant_id, base_path),
    -- The composite key makes a cross-tenant reference impossible at the schema level.
    FOREIGN KEY (tenant_id, upstream_id) REFERENCES upstreams (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX apis_tenant_idx ON apis (tenant_id, created_at, id);

CREATE TABLE plans (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  text NOT NULL,
    rate_limit_requests   bigint NOT NULL DEFAULT 0 CHECK (rate_limit_requests >= 0),
    rate_limit_per_seconds bigint NOT NULL DEFAULT 0 CHECK (rate_limit_per_seconds >= 0),
    quota_requests        bigint NOT NULL DEFAULT 0 CHECK (quota_requests >= 0),
    quota_period          text NOT NULL DEFAULT 'month' CHECK (quota_period IN ('day', 'month')),
    price_cents           bigint CHECK (price_cents >= 0),
    currency              text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE INDEX plans_tenant_idx ON plans (tenant_id, created_at, id);

CREATE TABLE plan_apis (
    tenant_id uuid NOT NULL,
    plan_id   uuid NOT NULL,
    api_id    uuid NOT NULL,
    PRIMARY KEY (plan_id, api_id),
    FOREIGN KEY (tenant_id, plan_id) REFERENCES plans (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, api_id) REFERENCES apis (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE consumers (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE INDEX consumers_tenant_idx ON consumers (tenant_id, created_at, id);

-- keys never hold an API key, only its HMAC digest and a short display prefix.
CREATE TABLE keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL,
    consumer_id uuid NOT NULL,
    plan_id     uuid NOT NULL,
    digest      text NOT NULL UNIQUE,
    prefix      text NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    FOREIGN KEY (tenant_id, consumer_id) REFERENCES consumers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, plan_id) REFERENCES plans (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX keys_tenant_idx ON keys (tenant_id, created_at, id);
CREATE INDEX keys_consumer_idx ON keys (tenant_id, consumer_id);
CREATE INDEX keys_plan_idx ON keys (plan_id) WHERE status = 'active';

CREATE TABLE audit_log (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor         text NOT NULL,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    data          jsonb NOT NULL DEFAULT '{}',
    at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, at, id);

-- config_state is a single row: the generation of the data-plane config that
-- the database holds, and the newest generation published to Redis.
CREATE TABLE config_state (
    singleton            boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation           bigint NOT NULL,
    published_generation bigint NOT NULL
);
INSERT INTO config_state (generation, published_generation) VALUES (1, 0);

-- key_outbox carries key record changes to Redis; rows are written in the
-- transaction of the change and marked published by the publisher.
CREATE TABLE key_outbox (
    id           bigserial PRIMARY KEY,
    digest       text NOT NULL,
    record       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX key_outbox_unpublished_idx ON key_outbox (id) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE key_outbox;
DROP TABLE config_state;
DROP TABLE audit_log;
DROP TABLE keys;
DROP TABLE consumers;
DROP TABLE plan_apis;
DROP TABLE plans;
DROP TABLE apis;
DROP TABLE targets;
DROP TABLE upstreams;
DROP TABLE admin_tokens;
DROP TABLE tenants;
