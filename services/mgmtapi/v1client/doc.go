// Package v1client is the Go client of Tollgate's management API /v1:
// client.gen.go is generated from the OpenAPI document the control plane
// serves (oapi-codegen, see internal/gen), and client.go adds what every
// caller needs: the bearer token, the base URL, retries that are safe
// (every POST carries an Idempotency-Key, so a retried create is not made
// twice) and If-Match for changes that must not overwrite another's.
// tollgate apply, export and tenant use it, so the project's own tools
// exercise the document.
package v1client

//go:generate go run gen.go
