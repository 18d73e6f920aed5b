package store

import (
	"encoding/base64"
	"errors"
	"strings"
	"time"
)

// Page limits.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// ErrBadCursor is returned for a cursor that this package did not produce.
var ErrBadCursor = errors.New("malformed cursor")

// Page selects one page of a list ordered by (created_at, id). Lists use
// keyset pagination so that concurrent inserts never shift or repeat items.
type Page struct {
	// Limit is the page size; 0 means DefaultLimit, values above MaxLimit are capped.
	Limit int
	// After is the opaque cursor of the previous page; "" starts at the beginning.
	After string
}

// Size is the effective page size.
func (p Page) Size() int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// Position is a decoded cursor: the sort key of the last item seen.
type Position struct {
	At time.Time
	ID string
}

// Decode parses the cursor. A zero Position (At.IsZero()) means "from the start".
func (p Page) Decode() (Position, error) {
	if p.After == "" {
		return Position{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(p.After)
	if err != nil {
		return Position{}, ErrBadCursor
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok || id == "" {
		return Position{}, ErrBadCursor
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || !ValidID(id) {
		return Position{}, ErrBadCursor
	}
	return Position{At: t, ID: id}, nil
}

// Cursor encodes the sort key of the last item of a page.
func Cursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

// Args returns the position as query arguments for the keyset condition
// "($n::timestamptz IS NULL OR (created_at, id) > ($n, $m::uuid))": both are
// nil at the start of a list.
func (p Position) Args() (at, id any) {
	if p.At.IsZero() {
		return nil, nil
	}
	return p.At, p.ID
}
