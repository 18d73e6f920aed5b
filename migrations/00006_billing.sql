-- +goose Up
-- Billing through Stripe Connect (issue 9). Tollgate holds the platform's key
-- only; each tenant has a connected account, and every object below that
-- names a Stripe id lives on that account.

-- A plan's price: a flat recurring amount, a per-request amount (a metered
-- price on a Billing Meter, graduated with a free first tier of
-- included_requests), or both. Amounts in the currency's minor unit.
ALTER TABLE plans
    ADD COLUMN price_interval      text NOT NULL DEFAULT 'month' CHECK (price_interval IN ('day', 'week', 'month', 'year')),
    ADD COLUMN per_request_decimal numeric(20, 12) CHECK (per_request_decimal >= 0),
    ADD COLUMN included_requests   bigint NOT NULL DEFAULT 0 CHECK (included_requests >= 0);

-- tenant_billing is a tenant's Stripe connection.
CREATE TABLE tenant_billing (
    tenant_id            uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    stripe_account_id    text NOT NULL,
    -- grace_period_seconds is how long a past-due subscription keeps working.
    grace_period_seconds int NOT NULL DEFAULT 259200 CHECK (grace_period_seconds BETWEEN 0 AND 2592000),
    livemode             boolean NOT NULL DEFAULT false,
    connected_at         timestamptz NOT NULL DEFAULT now(),
    -- deauthorized_at is set when the tenant disconnects Tollgate in Stripe.
    deauthorized_at      timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenant_billing_account_key ON tenant_billing (stripe_account_id);

-- plan_prices are the Stripe Product and Prices of each version of a plan's
-- price. A price change makes a new version (new Prices); subscribers keep
-- the version they subscribed to until they change plan.
CREATE TABLE plan_prices (
    tenant_id         uuid NOT NULL,
    plan_id           uuid NOT NULL,
    version           int NOT NULL,
    -- price is the catalog price this version was made from (JSON).
    price             jsonb NOT NULL,
    stripe_product_id text NOT NULL DEFAULT '',
    flat_price_id     text NOT NULL DEFAULT '',
    metered_price_id  text NOT NULL DEFAULT '',
    meter_id          text NOT NULL DEFAULT '',
    meter_event_name  text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    synced_at         timestamptz,
    archived_at       timestamptz,
    PRIMARY KEY (plan_id, version),
    FOREIGN KEY (tenant_id, plan_id) REFERENCES plans (tenant_id, id) ON DELETE CASCADE
);

-- billing_jobs is the outbox of Stripe work (sync a plan's product and
-- prices, archive them): written in the transaction of the change, run by
-- one worker at a time per job (SKIP LOCKED), retried with backoff.
CREATE TABLE billing_jobs (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    ref         text NOT NULL,
    attempts    int NOT NULL DEFAULT 0,
    run_at      timestamptz NOT NULL DEFAULT now(),
    last_error  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
CREATE INDEX billing_jobs_due_idx ON billing_jobs (run_at, id) WHERE done_at IS NULL;

-- billing_customers: one Stripe Customer per app, so two apps never bill
-- each other's usage.
CREATE TABLE billing_customers (
    tenant_id          uuid NOT NULL,
    app_id             uuid PRIMARY KEY,
    stripe_customer_id text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, app_id) REFERENCES apps (tenant_id, id) ON DELETE CASCADE
);

-- A subscription's Stripe side. last_event_at is the `created` of the newest
-- Stripe event applied to it: an older event never overwrites a newer state.
ALTER TABLE subscriptions
    ADD COLUMN plan_version               int,
    ADD COLUMN stripe_subscription_id     text,
    ADD COLUMN stripe_checkout_session_id text,
    ADD COLUMN stripe_status              text NOT NULL DEFAULT '',
    ADD COLUMN current_period_start       timestamptz,
    ADD COLUMN current_period_end         timestamptz,
    ADD COLUMN grace_until                timestamptz,
    ADD COLUMN cancel_at_period_end       boolean NOT NULL DEFAULT false,
    ADD COLUMN last_event_at              timestamptz;
CREATE UNIQUE INDEX subscriptions_stripe_key ON subscriptions (stripe_subscription_id) WHERE stripe_subscription_id IS NOT NULL;

-- stripe_events records every webhook event applied (or deliberately
-- ignored), in the transaction of its effects: a replay changes nothing.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    account     text NOT NULL DEFAULT '',
    type        text NOT NULL,
    created     timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    outcome     text NOT NULL
);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);

-- invoices mirror the Stripe invoices of subscriptions (from webhooks), for
-- the developer's history and the tenant's revenue.
CREATE TABLE invoices (
    stripe_invoice_id  text PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subscription_id    uuid,
    status             text NOT NULL,
    currency           text NOT NULL DEFAULT '',
    amount_due         bigint NOT NULL DEFAULT 0,
    amount_paid        bigint NOT NULL DEFAULT 0,
    period_start       timestamptz,
    period_end         timestamptz,
    hosted_invoice_url text NOT NULL DEFAULT '',
    created            timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_tenant_idx ON invoices (tenant_id, created DESC);
CREATE INDEX invoices_subscription_idx ON invoices (subscription_id, created DESC);

-- meter_reports is the outbox of metered usage: one row per (subscription,
-- window, sequence). The identifier is deterministic, sent with one value
-- only; usage that arrives after its window was reported goes out as the
-- next sequence of that window (a new identifier) carrying the difference.
CREATE TABLE meter_reports (
    id               bigserial PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subscription_id  uuid NOT NULL,
    stripe_account   text NOT NULL,
    stripe_customer  text NOT NULL,
    event_name       text NOT NULL,
    window_start     timestamptz NOT NULL,
    seq              int NOT NULL,
    value            bigint NOT NULL CHECK (value > 0),
    identifier       text NOT NULL UNIQUE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'refused', 'expired')),
    attempts         int NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (subscription_id, window_start, seq)
);
CREATE INDEX meter_reports_pending_idx ON meter_reports (id) WHERE status = 'pending';
CREATE INDEX meter_reports_tenant_idx ON meter_reports (tenant_id, window_start);

-- +goose Down
DROP TABLE meter_reports;
DROP TABLE invoices;
DROP TABLE stripe_events;
DROP INDEX subscriptions_stripe_key;
ALTER TABLE subscriptions DROP COLUMN last_event_at, DROP COLUMN cancel_at_period_end, DROP COLUMN grace_until,
    DROP COLUMN current_period_end, DROP COLUMN current_period_start, DROP COLUMN stripe_status,
    DROP COLUMN stripe_checkout_session_id, DROP COLUMN stripe_subscription_id, DROP COLUMN plan_version;
DROP TABLE billing_customers;
DROP TABLE billing_jobs;
DROP TABLE plan_prices;
DROP TABLE tenant_billing;
ALTER TABLE plans DROP COLUMN included_requests, DROP COLUMN per_request_decimal, DROP COLUMN price_interval;
