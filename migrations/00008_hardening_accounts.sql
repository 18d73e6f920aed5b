-- +goose Up
-- Hardening of the tenant portal's accounts (issue 10).

-- A user's email is verified when its owner proved the mailbox: a signup
-- confirmation link, an accepted invitation, a password reset link, or an
-- identity provider that vouched for it. Single sign-on links only verified
-- accounts; an unverified account of the same address is taken over by the
-- identity provider's user (its password and sessions dropped).
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
-- Existing users: those who signed up themselves never proved their address;
-- everyone else joined by invitation, by an identity provider or was made by
-- the operator.
UPDATE users SET email_verified_at = created_at
WHERE id::text NOT IN (SELECT resource_id FROM audit_log WHERE action = 'user.signup' AND resource_type = 'user');

-- email_verifications are the single-use confirmation links of signup (only
-- the SHA-256 of the mailed token is stored).
CREATE TABLE email_verifications (
    digest     text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);

-- tenant_sso holds who a tenant's own identity provider may admit without an
-- invitation: people whose verified email (and Google hosted domain, when the
-- IdP sends one) is at one of allowed_domains. Empty means invitation only.
CREATE TABLE tenant_sso (
    tenant_id       uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    allowed_domains text[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- An admin token made by a portal user (directly, or by a token that user
-- made) names that user, so that removing the user or taking admin rights
-- away revokes the tokens. No foreign key: the id stays for the record after
-- the user is gone. NULL for tokens of the operator and of older rows.
ALTER TABLE admin_tokens ADD COLUMN created_by_user uuid;
CREATE INDEX admin_tokens_creator_idx ON admin_tokens (created_by_user) WHERE created_by_user IS NOT NULL;

-- +goose Down
DROP INDEX admin_tokens_creator_idx;
ALTER TABLE admin_tokens DROP COLUMN created_by_user;
DROP TABLE tenant_sso;
DROP TABLE email_verifications;
ALTER TABLE users DROP COLUMN email_verified_at;
