// Package storetest opens real state stores for tests: an SQLite file in the
// test's temporary directory, or a fresh schema on the machine's PostgreSQL.
// Each helper registers its own cleanup.
//
// It does not fake anything: tests run against the engines production uses.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/testenv"
)

// PostgresURLEnv names the environment variable holding the PostgreSQL
// server that tests use; [DefaultPostgresURL] applies when it is unset.
const PostgresURLEnv = "CONFLUX_TEST_POSTGRES_URL"

// DefaultPostgresURL is the machine's PostgreSQL, reached with trust auth.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// SQLite opens a migrated SQLite state store in a file under t.TempDir and
// closes it when the test ends.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), store.Options{
		SQLitePath: filepath.Join(t.TempDir(), "state", "conflux.db"),
		Logger:     Logger(t),
	})
	if err != nil {
		t.Fatalf("opening SQLite state store: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing SQLite state store: %v", err)
		}
	})
	return db
}

// Postgres opens a migrated PostgreSQL state store in a fresh, uniquely
// named schema, and drops the schema when the test ends. The server is
// $CONFLUX_TEST_POSTGRES_URL or [DefaultPostgresURL]. If it is unreachable
// the test is skipped, or fails when $CONFLUX_REQUIRE_SERVICES is 1.
func Postgres(t testing.TB) *store.DB {
	t.Helper()
	url := PostgresSchema(t)
	db, err := store.Open(t.Context(), store.Options{PostgresURL: url, Logger: Logger(t)})
	if err != nil {
		t.Fatalf("opening PostgreSQL state store: %v", err)
	}
	// Registered after PostgresSchema's cleanup, so it runs before the
	// schema is dropped.
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing PostgreSQL state store: %v", err)
		}
	})
	return db
}

// PostgresSchema creates a fresh, uniquely named, empty schema on the test
// PostgreSQL server and returns a connection string whose search_path is
// that schema, so that everything created through it lands there. The
// schema is dropped when the test ends. Use it to open the same schema more
// than once; it skips or fails like [Postgres].
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		base = DefaultPostgresURL
	}
	admin, err := sql.Open("pgx", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
		if err != nil {
			_ = admin.Close()
		}
	}
	if err != nil {
		msg := "PostgreSQL at " + store.RedactURL(base) + " is unreachable (set " + PostgresURLEnv +
			" to use another server): " + err.Error()
		testenv.Unavailable(t, msg)
	}

	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	schema := "conflux_test_" + hex.EncodeToString(suffix[:])
	if _, err := admin.ExecContext(t.Context(), `CREATE SCHEMA `+schema); err != nil {
		_ = admin.Close()
		t.Fatalf("creating PostgreSQL schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping PostgreSQL schema %s: %v", schema, err)
		}
	})
	return withSearchPath(base, schema)
}

// withSearchPath adds a search_path run-time parameter to a pgx connection
// string in URL or key=value form.
func withSearchPath(connString, schema string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return connString + " search_path=" + schema
}

// Each runs body twice, as the subtests "sqlite" and "postgres", each with a
// fresh store from [SQLite] or [Postgres].
func Each(t *testing.T, body func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { body(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { body(t, Postgres(t)) })
}

// Logger returns a logger that writes to the test's output, shown with -v or
// when the test fails.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
