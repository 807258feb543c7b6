package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// target is one database that a test opens itself, possibly more than once.
type target struct {
	name string
	opts func(t *testing.T) store.Options
}

var targets = []target{
	{"sqlite", func(t *testing.T) store.Options {
		return store.Options{SQLitePath: filepath.Join(t.TempDir(), "conflux.db")}
	}},
	{"postgres", func(t *testing.T) store.Options {
		return store.Options{PostgresURL: storetest.PostgresSchema(t)}
	}},
}

// syncBuffer is a bytes.Buffer that several goroutines' loggers can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func open(t *testing.T, opts store.Options, logTo *syncBuffer) *store.DB {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(logTo, nil))
	db, err := store.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

type appliedRow struct {
	version   int
	name      string
	appliedAt int64
}

func schemaMigrations(t *testing.T, db *store.DB) []appliedRow {
	t.Helper()
	rows, err := db.SQL().QueryContext(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	defer rows.Close()
	var out []appliedRow
	for rows.Next() {
		var r appliedRow
		if err := rows.Scan(&r.version, &r.name, &r.appliedAt); err != nil {
			t.Fatalf("scanning schema_migrations: %v", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return out
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			opts := tg.opts(t)
			var firstLog, secondLog syncBuffer
			first := open(t, opts, &firstLog)
			before := schemaMigrations(t, first)
			if len(before) == 0 {
				t.Fatal("first Open recorded no migrations")
			}
			for i, r := range before {
				if r.version != i+1 {
					t.Fatalf("schema_migrations = %+v, want versions 1..n", before)
				}
			}
			if n := strings.Count(firstLog.String(), "applied migration"); n != len(before) {
				t.Errorf("first Open logged %d applied migrations, want %d:\n%s", n, len(before), firstLog.String())
			}
			if err := first.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			second := open(t, opts, &secondLog)
			after := schemaMigrations(t, second)
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("schema_migrations changed on the second Open:\n got %+v\nwant %+v", after, before)
			}
			if strings.Contains(secondLog.String(), "applied migration") {
				t.Errorf("second Open applied migrations again:\n%s", secondLog.String())
			}
		})
	}
}

func TestMigrateConcurrentOpen(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			opts := tg.opts(t)
			const openers = 4
			var (
				logs syncBuffer
				wg   sync.WaitGroup
				dbs  [openers]*store.DB
				errs [openers]error
			)
			start := make(chan struct{})
			for i := range openers {
				wg.Go(func() {
					o := opts
					o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
					<-start
					dbs[i], errs[i] = store.Open(t.Context(), o)
				})
			}
			close(start)
			wg.Wait()
			for i := range openers {
				if errs[i] != nil {
					t.Errorf("Open #%d: %v", i, errs[i])
					continue
				}
				t.Cleanup(func() { _ = dbs[i].Close() })
			}
			if t.Failed() {
				return
			}
			applied := schemaMigrations(t, dbs[0])
			if n := strings.Count(logs.String(), "applied migration"); n != len(applied) {
				t.Errorf("%d concurrent Opens applied %d migrations in total, want each of the %d once:\n%s",
					openers, n, len(applied), logs.String())
			}
		})
	}
}

func TestStoreInTx(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE tx_test (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
			t.Fatalf("creating table: %v", err)
		}
		insert := db.Rebind(`INSERT INTO tx_test (id, v) VALUES (?, ?)`)
		count := func() int {
			t.Helper()
			var n int
			if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM tx_test`).Scan(&n); err != nil {
				t.Fatalf("counting rows: %v", err)
			}
			return n
		}

		errBoom := errors.New("boom")
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, insert, 1, "rolled back"); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("InTx returned %v, want fn's error", err)
		}
		if n := count(); n != 0 {
			t.Fatalf("after a failed InTx the table has %d rows, want 0", n)
		}

		func() {
			defer func() {
				if r := recover(); r != "panic in fn" {
					t.Errorf("recovered %v, want InTx to re-panic with fn's value", r)
				}
			}()
			_ = db.InTx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, insert, 2, "rolled back"); err != nil {
					return err
				}
				panic("panic in fn")
			})
		}()
		if n := count(); n != 0 {
			t.Fatalf("after a panicking InTx the table has %d rows, want 0", n)
		}

		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, insert, 3, "committed")
			return err
		}); err != nil {
			t.Fatalf("InTx: %v", err)
		}
		if n := count(); n != 1 {
			t.Fatalf("after a successful InTx the table has %d rows, want 1", n)
		}
	})
}

// TestStoreConcurrentWriters runs read-then-write transactions at once. On
// SQLite with deferred transactions they would fail with SQLITE_BUSY when
// upgrading their read lock; BEGIN IMMEDIATE makes them queue instead.
func TestStoreConcurrentWriters(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
			t.Fatalf("creating table: %v", err)
		}
		if _, err := db.SQL().ExecContext(ctx, `INSERT INTO counter (id, n) VALUES (1, 0)`); err != nil {
			t.Fatalf("inserting row: %v", err)
		}
		const writers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for range writers {
			wg.Go(func() {
				for range each {
					errs <- db.InTx(ctx, func(tx *sql.Tx) error {
						var n int64
						// FOR UPDATE is PostgreSQL's way to the same
						// serialisation; SQLite's lock is the whole file.
						q := `SELECT n FROM counter WHERE id = 1`
						if db.Dialect() == store.Postgres {
							q += ` FOR UPDATE`
						}
						if err := tx.QueryRowContext(ctx, q).Scan(&n); err != nil {
							return err
						}
						_, err := tx.ExecContext(ctx, db.Rebind(`UPDATE counter SET n = ? WHERE id = 1`), n+1)
						return err
					})
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent InTx: %v", err)
			}
		}
		var n int64
		if err := db.SQL().QueryRowContext(ctx, `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
			t.Fatalf("reading counter: %v", err)
		}
		if n != writers*each {
			t.Errorf("counter = %d, want %d", n, writers*each)
		}
	})
}

func TestStoreSQLitePragmas(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "dir", "conflux.db")
	db := open(t, store.Options{SQLitePath: path}, &syncBuffer{})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
	if db.Dialect() != store.SQLite {
		t.Errorf("Dialect() = %v, want sqlite", db.Dialect())
	}
	// Pin one connection so that every pragma is read from the same one.
	conn, err := db.SQL().Conn(t.Context())
	if err != nil {
		t.Fatalf("getting a connection: %v", err)
	}
	defer conn.Close()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"busy_timeout": "10000",
		"foreign_keys": "1",
	} {
		var got string
		if err := conn.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

func TestStoreOpenOptions(t *testing.T) {
	t.Parallel()
	if _, err := store.Open(t.Context(), store.Options{}); err == nil {
		t.Error("Open with no database configured succeeded, want an error")
	}
	_, err := store.Open(t.Context(), store.Options{PostgresURL: "postgres://u:hunter2@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"})
	if err == nil {
		t.Fatal("Open of an unreachable PostgreSQL succeeded, want an error")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error reveals the password: %v", err)
	}
}

func TestStoreOpenPostgresWins(t *testing.T) {
	t.Parallel()
	sqlitePath := filepath.Join(t.TempDir(), "unused.db")
	db := open(t, store.Options{PostgresURL: storetest.PostgresSchema(t), SQLitePath: sqlitePath}, &syncBuffer{})
	if db.Dialect() != store.Postgres {
		t.Errorf("Dialect() = %v, want postgres", db.Dialect())
	}
	if _, err := os.Stat(sqlitePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SQLite file was touched although a PostgreSQL URL was given: %v", err)
	}
}

func TestStoreCloseTwice(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		if err := db.Close(); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func TestStoreConstraintErrors(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		exec := func(q string, args ...any) error {
			_, err := db.SQL().ExecContext(ctx, db.Rebind(q), args...)
			return err
		}
		if err := exec(`INSERT INTO sources (id, name, origin, created_at, updated_at) VALUES (?, ?, 'api', 0, 0)`, "a", "A"); err != nil {
			t.Fatalf("insert: %v", err)
		}
		err := exec(`INSERT INTO sources (id, name, origin, created_at, updated_at) VALUES (?, ?, 'api', 0, 0)`, "a", "A")
		if !store.IsUniqueViolation(err) || store.IsForeignKeyViolation(err) {
			t.Errorf("duplicate primary key: IsUniqueViolation = %v, IsForeignKeyViolation = %v (err %v)",
				store.IsUniqueViolation(err), store.IsForeignKeyViolation(err), err)
		}
		err = exec(`INSERT INTO source_write_keys (write_key, source_id, created_at) VALUES (?, ?, 0)`, "k", "missing")
		if !store.IsForeignKeyViolation(err) || store.IsUniqueViolation(err) {
			t.Errorf("missing parent: IsForeignKeyViolation = %v, IsUniqueViolation = %v (err %v)",
				store.IsForeignKeyViolation(err), store.IsUniqueViolation(err), err)
		}
		if store.IsUniqueViolation(errors.New("other")) || store.IsForeignKeyViolation(nil) {
			t.Error("unrelated errors classified as constraint violations")
		}
	})
}
