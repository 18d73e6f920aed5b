-- +goose Up
-- The Billing Meter billing creates on a tenant's connected account: one per
-- account, shared by the metered prices of all the tenant's plans. Kept here
-- (not only on plan_prices) so that it survives the deletion of every plan
-- and is never created twice (Stripe allows one active meter per event name).
ALTER TABLE tenant_billing
    ADD COLUMN meter_id         text NOT NULL DEFAULT '',
    ADD COLUMN meter_event_name text NOT NULL DEFAULT '';

-- Finding a plan's price versions by the Stripe price ids a subscription
-- carries (a plan switched in Stripe's Customer Portal, a downgrade that
-- took effect at the period's end).
CREATE INDEX plan_prices_flat_idx ON plan_prices (flat_price_id) WHERE flat_price_id <> '';
CREATE INDEX plan_prices_metered_idx ON plan_prices (metered_price_id) WHERE metered_price_id <> '';

-- +goose Down
DROP INDEX plan_prices_metered_idx;
DROP INDEX plan_prices_flat_idx;
ALTER TABLE tenant_billing DROP COLUMN meter_event_name, DROP COLUMN meter_id;
