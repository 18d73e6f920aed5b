package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
)

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	dsn := storetest.NewDatabase(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var gen, pub int64
	if err := db.QueryRow(ctx, `SELECT generation, published_generation FROM config_state`).Scan(&gen, &pub); err != nil {
		t.Fatal(err)
	}
	if gen != 1 || pub != 0 {
		t.Fatalf("config_state %d/%d, want 1/0", gen, pub)
	}
}

func TestOpenBadDSN(t *testing.T) {
	t.Parallel()
	if _, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?connect_timeout=2"); err == nil {
		t.Fatal("want error")
	}
}

func TestPage(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	id := "0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	tests := []struct {
		name    string
		page    store.Page
		size    int
		want    store.Position
		wantErr bool
	}{
		{name: "start", page: store.Page{}, size: store.DefaultLimit},
		{name: "capped", page: store.Page{Limit: 1000}, size: store.MaxLimit},
		{name: "round trip", page: store.Page{Limit: 3, After: store.Cursor(at, id)}, size: 3, want: store.Position{At: at, ID: id}},
		{name: "garbage", page: store.Page{After: "!!"}, size: store.DefaultLimit, wantErr: true},
		{name: "bad id", page: store.Page{After: store.Cursor(at, "x")}, size: store.DefaultLimit, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.page.Size(); got != tc.size {
				t.Errorf("size %d, want %d", got, tc.size)
			}
			pos, err := tc.page.Decode()
			if tc.wantErr {
				if !errors.Is(err, store.ErrBadCursor) {
					t.Fatalf("err %v, want ErrBadCursor", err)
				}
				return
			}
			if err != nil || !pos.At.Equal(tc.want.At) || pos.ID != tc.want.ID {
				t.Fatalf("decode %+v %v, want %+v", pos, err, tc.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"uuid", "0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", true},
		{"upper", "0B1D2C3E-4F50-4A6B-8C7D-9E0F1A2B3C4D", true},
		{"short", "0b1d2c3e", false},
		{"bad char", "0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4g", false},
		{"dash misplaced", "0b1d2c3e4-f50-4a6b-8c7d-9e0f1a2b3c4d", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.ValidID(tc.in); got != tc.want {
				t.Fatalf("ValidID(%q) = %v", tc.in, got)
			}
		})
	}
}
