-- +goose Up
-- Developer portals (issue 8): each tenant's API consumers (developers) sign
-- up, verify their address, create apps, subscribe them to public plans and
-- hold keys per subscription. A developer is a consumer of the catalog with
-- an account; apps and subscriptions belong to the consumer.

-- The tenant's portal settings: on/off, how developers sign up, which email
-- domains may, and the developers' own OIDC provider (secret encrypted like
-- the tenant admins' one).
ALTER TABLE tenant_settings
    ADD COLUMN portal_enabled         boolean NOT NULL DEFAULT false,
    ADD COLUMN signup_mode            text NOT NULL DEFAULT 'open' CHECK (signup_mode IN ('open', 'approval', 'invite')),
    ADD COLUMN allowed_email_domains  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN dev_oidc_issuer        text NOT NULL DEFAULT '',
    ADD COLUMN dev_oidc_client_id     text NOT NULL DEFAULT '',
    ADD COLUMN dev_oidc_client_secret bytea;

-- Published APIs appear in the developer portal's catalogue.
ALTER TABLE apis ADD COLUMN published boolean NOT NULL DEFAULT false;

-- Public plans can be chosen in the developer portal; approval_required
-- makes a subscription wait for the tenant.
ALTER TABLE plans
    ADD COLUMN public            boolean NOT NULL DEFAULT false,
    ADD COLUMN approval_required boolean NOT NULL DEFAULT false;

-- A suspended consumer's keys are refused (403) on every worker.
ALTER TABLE consumers ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended'));

-- A custom domain serves the tenant's gateway (as before) or its developer portal.
ALTER TABLE custom_domains ADD COLUMN purpose text NOT NULL DEFAULT 'gateway' CHECK (purpose IN ('gateway', 'portal'));

-- developers are the accounts of consumers in one tenant's portal. The email
-- is unique per tenant (the same person may use many portals).
CREATE TABLE developers (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    consumer_id       uuid NOT NULL,
    email             text NOT NULL,
    name              text NOT NULL,
    -- password_hash is an argon2id PHC string; NULL for OIDC-only developers.
    password_hash     text,
    email_verified_at timestamptz,
    -- pending: waits for the tenant's approval; rejected: refused by it.
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active', 'rejected')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, consumer_id) REFERENCES consumers (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX developers_email_key ON developers (tenant_id, lower(email));
CREATE UNIQUE INDEX developers_consumer_key ON developers (consumer_id);
CREATE INDEX developers_tenant_idx ON developers (tenant_id, created_at, id);
CREATE INDEX developers_pending_idx ON developers (tenant_id, created_at, id) WHERE status = 'pending';

-- developer_identities link an (issuer, subject) of the tenant's developer
-- IdP to a developer.
CREATE TABLE developer_identities (
    tenant_id    uuid NOT NULL,
    issuer       text NOT NULL,
    subject      text NOT NULL,
    developer_id uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, issuer, subject),
    FOREIGN KEY (tenant_id, developer_id) REFERENCES developers (tenant_id, id) ON DELETE CASCADE
);

-- developer_sessions hold the SHA-256 of a session id: a browser cookie or a
-- bearer token of the portal's JSON API.
CREATE TABLE developer_sessions (
    digest       text PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    developer_id uuid NOT NULL,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, developer_id) REFERENCES developers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX developer_sessions_developer_idx ON developer_sessions (developer_id);
CREATE INDEX developer_sessions_expiry_idx ON developer_sessions (expires_at);

-- developer_tokens are single-use mailed tokens (SHA-256 only): address
-- verification, password reset, and invitations (no developer yet, only an
-- email).
CREATE TABLE developer_tokens (
    digest       text PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('verify', 'reset', 'invite')),
    developer_id uuid,
    email        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    FOREIGN KEY (tenant_id, developer_id) REFERENCES developers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX developer_tokens_tenant_idx ON developer_tokens (tenant_id, kind, created_at);

-- apps group a consumer's subscriptions and keys (one per integration).
CREATE TABLE apps (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL,
    consumer_id uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, consumer_id) REFERENCES consumers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX apps_consumer_idx ON apps (tenant_id, consumer_id, created_at, id);

-- subscriptions put an app on a plan. Keys belong to a subscription and
-- share its quota; its status decides what the workers do with them.
CREATE TABLE subscriptions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL,
    app_id      uuid NOT NULL,
    consumer_id uuid NOT NULL,
    plan_id     uuid NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'active', 'payment_required', 'past_due',
                                                'suspended', 'canceled', 'rejected')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz,
    decided_by  text NOT NULL DEFAULT '',
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, app_id) REFERENCES apps (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, consumer_id) REFERENCES consumers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, plan_id) REFERENCES plans (tenant_id, id) ON DELETE CASCADE
);
-- One live subscription of an app to a plan.
CREATE UNIQUE INDEX subscriptions_live_key ON subscriptions (app_id, plan_id)
    WHERE status NOT IN ('canceled', 'rejected');
CREATE INDEX subscriptions_tenant_idx ON subscriptions (tenant_id, created_at, id);
CREATE INDEX subscriptions_app_idx ON subscriptions (tenant_id, app_id);
CREATE INDEX subscriptions_pending_idx ON subscriptions (tenant_id, created_at, id) WHERE status = 'pending';

-- Keys issued in the developer portal belong to a subscription (and so to an
-- app); a rotated key expires at the end of the overlap its owner chose.
ALTER TABLE keys
    ADD COLUMN subscription_id uuid,
    ADD COLUMN app_id          uuid,
    ADD COLUMN expires_at      timestamptz,
    ADD COLUMN replaced_by     uuid,
    ADD CONSTRAINT keys_subscription_fkey FOREIGN KEY (tenant_id, subscription_id)
        REFERENCES subscriptions (tenant_id, id) ON DELETE CASCADE,
    ADD CONSTRAINT keys_app_fkey FOREIGN KEY (tenant_id, app_id)
        REFERENCES apps (tenant_id, id) ON DELETE CASCADE;
CREATE INDEX keys_subscription_idx ON keys (subscription_id) WHERE subscription_id IS NOT NULL;

-- throttle_hits count attempts per subject and fixed window, atomically (one
-- upsert per attempt), for signup, login, verification and reset throttling.
CREATE TABLE throttle_hits (
    subject      text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         int NOT NULL,
    PRIMARY KEY (subject, window_start)
);
CREATE INDEX throttle_hits_window_idx ON throttle_hits (window_start);

-- +goose Down
DROP TABLE throttle_hits;
DROP INDEX keys_subscription_idx;
ALTER TABLE keys DROP CONSTRAINT keys_app_fkey, DROP CONSTRAINT keys_subscription_fkey,
    DROP COLUMN replaced_by, DROP COLUMN expires_at, DROP COLUMN app_id, DROP COLUMN subscription_id;
DROP TABLE subscriptions;
DROP TABLE apps;
DROP TABLE developer_tokens;
DROP TABLE developer_sessions;
DROP TABLE developer_identities;
DROP TABLE developers;
ALTER TABLE custom_domains DROP COLUMN purpose;
ALTER TABLE consumers DROP COLUMN status;
ALTER TABLE plans DROP COLUMN approval_required, DROP COLUMN public;
ALTER TABLE apis DROP COLUMN published;
ALTER TABLE tenant_settings DROP COLUMN dev_oidc_client_secret, DROP COLUMN dev_oidc_client_id,
    DROP COLUMN dev_oidc_issuer, DROP COLUMN allowed_email_domains, DROP COLUMN signup_mode, DROP COLUMN portal_enabled;
