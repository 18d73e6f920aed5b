package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate/tollgate/services/store"
)

func cmdMigrate(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) > 0 {
		return fmt.Errorf("migrate takes no arguments (it uses TOLLGATE_DATABASE_URL)")
	}
	cfg, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	if err := ensureDatabase(ctx, cfg.DatabaseURL, false); err != nil {
		return err
	}
	if err := store.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

// ensureDatabase creates the database named in dsn when it does not exist, by
// connecting to the server's "postgres" database. With recreate it drops it
// first (the throwaway database of `tollgate dev`).
func ensureDatabase(ctx context.Context, dsn string, recreate bool) error {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Key-value DSNs are used as they are: the operator created the database.
		return nil
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	if !recreate {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
			return fmt.Errorf("connect to postgres (%s): %w", u.Redacted(), err)
		}
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect to postgres (%s): %w", admin.Redacted(), err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if recreate {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: a concurrent create
			return nil
		}
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
