// Package docs turns a tenant's OpenAPI document into the developer portal's
// API reference: a page model (Reference) built once per document and
// cached (Cache), code snippets in four languages with the developer's key
// filled in, and the templ components that render it on the server
// (ReferenceView). Nothing from the document reaches the page unescaped, and
// the page works without JavaScript except for the try-it console and the
// copy buttons (web/static/tryit.js; styles in web/static/docs.css).
//
// Decisions, where the issue was silent:
//   - The gateway URL (Options.BaseURL) replaces the document's servers,
//     which are the tenant's upstreams: they are never shown.
//   - The catalogue stores documents normalized to JSON, which loses the
//     order of paths, properties and examples; operations are listed by path
//     and then GET, POST, PUT, PATCH, DELETE, properties by name. Tags keep
//     the document's order (tags is a list).
//   - An operation with several tags is listed under its first one, so that
//     its anchor is unique; untagged operations go under "Other".
//   - Descriptions are plain text: paragraphs, bullet lists and fenced code
//     are recognised, the rest of Markdown (and any HTML) shows as typed.
//   - Schema trees are cut at 8 levels, 250 nodes and where a schema contains
//     itself; readOnly properties are left out of requests and writeOnly ones
//     out of responses. An example made up from a schema says so.
//   - Snippets put path parameters' examples into the URL (else "{name}"),
//     and required query parameters and those with an example into the query.
//   - The credential goes in X-API-Key for key auth (the gateway never
//     forwards it upstream) and in Authorization: Bearer for JWTs.
package docs
