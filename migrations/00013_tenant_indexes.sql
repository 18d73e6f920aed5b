-- +goose Up
-- Indexes for per-tenant reads that read every tenant's rows without them
-- (found by bench/scale, issue 12): a change of one tenant must cost
-- Postgres in proportion to that tenant.
--
-- api_routes is read by tenant on every compile of a tenant (the
-- publisher's, and the config_bytes check of each /v1 write), by the
-- routes limit and by each OpenAPI import; its primary key starts with
-- api_id, so each of those read all the platform's routes (100,000 at
-- 10,000 tenants).
CREATE INDEX api_routes_tenant_idx ON api_routes (tenant_id, api_id);
-- Deleting an API cascades to plan_apis by (tenant_id, api_id), which its
-- primary key (plan_id, api_id) does not serve.
CREATE INDEX plan_apis_api_idx ON plan_apis (tenant_id, api_id);

-- +goose Down
DROP INDEX plan_apis_api_idx;
DROP INDEX api_routes_tenant_idx;
