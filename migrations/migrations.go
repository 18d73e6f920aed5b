// Package migrations holds the numbered goose SQL migrations of the control
// plane's Postgres schema, embedded so that the binary carries them.
package migrations

import "embed"

// FS holds every migration file (00001_init.sql, ...) in goose format.
//
//go:embed *.sql
var FS embed.FS
