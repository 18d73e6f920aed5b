-- +goose Up
-- The tenant portal: people (users) who sign in to a tenant, their sessions,
-- invitations, password resets, login throttling, single sign-on identities,
-- the routes imported from OpenAPI documents and the tenant's portal settings.

-- A user belongs to exactly one tenant; the email is unique platform-wide so
-- that the login form needs nothing but an email and a password.
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email         text NOT NULL,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    -- password_hash is an argon2id PHC string; NULL for SSO-only users.
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at, id);

-- sessions hold only the SHA-256 of the session id the cookie carries.
CREATE TABLE sessions (
    digest      text PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

CREATE TABLE invites (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    digest      text NOT NULL UNIQUE,
    invited_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX invites_tenant_idx ON invites (tenant_id, created_at, id);

CREATE TABLE password_resets (
    digest     text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);

-- login_failures counts failed logins per subject ("email:<addr>" or
-- "ip:<addr>") to throttle guessing; rows older than the window are pruned.
CREATE TABLE login_failures (
    subject text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_subject_idx ON login_failures (subject, at);

-- user_identities link an OIDC (issuer, subject) to a user.
CREATE TABLE user_identities (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);

-- api_routes are the operations of an API imported from an OpenAPI document.
CREATE TABLE api_routes (
    tenant_id    uuid NOT NULL,
    api_id       uuid NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    operation_id text NOT NULL DEFAULT '',
    summary      text NOT NULL DEFAULT '',
    PRIMARY KEY (api_id, method, path),
    FOREIGN KEY (tenant_id, api_id) REFERENCES apis (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE api_documents (
    tenant_id   uuid NOT NULL,
    api_id      uuid PRIMARY KEY,
    title       text NOT NULL,
    version     text NOT NULL,
    document    jsonb NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, api_id) REFERENCES apis (tenant_id, id) ON DELETE CASCADE
);

-- tenant_settings hold the portal settings of a tenant: developer portal
-- branding and the tenant's own OIDC identity provider (client secret
-- encrypted with a key derived from TOLLGATE_SECRET).
CREATE TABLE tenant_settings (
    tenant_id            uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    portal_title         text NOT NULL DEFAULT '',
    portal_color         text NOT NULL DEFAULT '',
    portal_logo_url      text NOT NULL DEFAULT '',
    support_email        text NOT NULL DEFAULT '',
    oidc_issuer          text NOT NULL DEFAULT '',
    oidc_client_id       text NOT NULL DEFAULT '',
    oidc_client_secret   bytea,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE custom_domains (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain             text NOT NULL,
    verification_token text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    verified_at        timestamptz,
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX custom_domains_domain_key ON custom_domains (lower(domain));
CREATE INDEX custom_domains_tenant_idx ON custom_domains (tenant_id, created_at, id);

-- +goose Down
DROP TABLE custom_domains;
DROP TABLE tenant_settings;
DROP TABLE api_documents;
DROP TABLE api_routes;
DROP TABLE user_identities;
DROP TABLE login_failures;
DROP TABLE password_resets;
DROP TABLE invites;
DROP TABLE sessions;
DROP TABLE users;
