package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect is the SQL engine behind a [DB]; callers switch on it only where
// the two engines cannot share a statement.
type Dialect int

// The supported engines.
const (
	// SQLite is the embedded default: one file under the data directory.
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL, used when --postgres-url is given.
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// sqliteBusyTimeoutMS is how long an SQLite statement waits for a lock held
// by another connection or process before failing with SQLITE_BUSY.
const sqliteBusyTimeoutMS = 10000

// Options says which database [Open] uses.
type Options struct {
	// SQLitePath is the SQLite database file. Its parent directory is
	// created if missing. Used when PostgresURL is empty.
	SQLitePath string
	// PostgresURL is a PostgreSQL connection string (URL or key=value form,
	// as accepted by pgx). It wins over SQLitePath when set.
	PostgresURL string
	// Logger receives start-up messages (migrations applied). Nil discards.
	Logger *slog.Logger
}

// DB is an open state store with its schema migrated. It is safe for
// concurrent use; it wraps a connection pool.
type DB struct {
	db      *sql.DB
	dialect Dialect
	logger  *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the database chosen by opts, checks that it answers, and
// applies pending migrations before returning. The caller must Close the DB.
func Open(ctx context.Context, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		db  *DB
		err error
	)
	switch {
	case opts.PostgresURL != "":
		db, err = openPostgres(ctx, opts.PostgresURL, logger)
	case opts.SQLitePath != "":
		db, err = openSQLite(ctx, opts.SQLitePath, logger)
	default:
		return nil, errors.New("opening state store: neither an SQLite path nor a PostgreSQL URL is set")
	}
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func openSQLite(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening SQLite state store %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("creating directory of SQLite state store %q: %w", path, err)
	}
	sdb, err := sql.Open("sqlite", sqliteDSN(abs))
	if err != nil {
		return nil, fmt.Errorf("opening SQLite state store %q: %w", path, err)
	}
	// A new connection switches the file to WAL; when another process or
	// connection is doing the same, SQLite answers SQLITE_BUSY at once
	// rather than wait (the busy timeout does not cover a journal-mode
	// change). Try again for as long as the busy timeout would have waited.
	for deadline := time.Now().Add(sqliteBusyTimeoutMS * time.Millisecond); ; {
		err = sdb.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		_ = sdb.Close()
		return nil, fmt.Errorf("opening SQLite state store %q: %w", path, err)
	}
	return &DB{
		db:      sdb,
		dialect: SQLite,
		logger:  logger.With("component", "store", "dialect", "sqlite"),
	}, nil
}

// sqliteDSN builds a modernc.org/sqlite URI for an absolute path. The file:
// form lets any character appear in the path (it is percent-encoded); the
// query sets the pragmas each new connection runs and makes every read-write
// transaction BEGIN IMMEDIATE.
func sqliteDSN(absPath string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMS))
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL: a committed configuration change survives a power cut.
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	// A larger page cache than SQLite's 2 MB, and reads through a memory
	// map rather than a read call per page: the profile store's indexes are
	// read at random.
	q.Add("_pragma", "cache_size(-65536)")
	q.Add("_pragma", "mmap_size(1073741824)")
	// Checkpoint every ~40 MB of WAL rather than 4 MB: a page written
	// many times between two checkpoints is copied once.
	q.Add("_pragma", "wal_autocheckpoint(10000)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(absPath), RawQuery: q.Encode()}
	return u.String()
}

func openPostgres(ctx context.Context, connString string, logger *slog.Logger) (*DB, error) {
	where := RedactURL(connString)
	sdb, err := sql.Open("pgx", connString)
	if err != nil {
		return nil, fmt.Errorf("opening PostgreSQL state store %s: %w", where, err)
	}
	if err := sdb.PingContext(ctx); err != nil {
		_ = sdb.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL state store %s: %w", where, err)
	}
	return &DB{
		db:      sdb,
		dialect: Postgres,
		logger:  logger.With("component", "store", "dialect", "postgres"),
	}, nil
}

// RedactURL returns a PostgreSQL connection string fit for messages: a URL
// with its password replaced by "xxxxx", or a placeholder for the key=value
// form, which may hold a password anywhere.
func RedactURL(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" {
		return "(connection string)"
	}
	return u.Redacted()
}

// Close closes the connection pool. It is safe to call more than once; later
// calls return the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		if err := db.db.Close(); err != nil {
			db.closeErr = fmt.Errorf("closing %s state store: %w", db.dialect, err)
		}
	})
	return db.closeErr
}

// SQL returns the connection pool, for queries that need no transaction.
// Pass every query through [DB.Rebind].
func (db *DB) SQL() *sql.DB { return db.db }

// Dialect says which engine this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// InTx runs fn in a transaction and commits it if fn returns nil; otherwise,
// or if fn panics, it rolls back and returns fn's error (or re-panics). fn
// must use only the given tx and must not keep it. On SQLite the transaction
// takes the write lock when it starts (BEGIN IMMEDIATE), so InTx waits up to
// the busy timeout for other writers.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning %s transaction: %w", db.dialect, err)
	}
	committed := false
	defer func() {
		if !committed {
			// The rollback error is secondary to fn's error or panic; a
			// broken connection is discarded by database/sql anyway.
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		committed = true // Commit ends the transaction either way.
		return fmt.Errorf("committing %s transaction: %w", db.dialect, err)
	}
	committed = true
	return nil
}

// IsUniqueViolation reports whether err is a PRIMARY KEY or UNIQUE
// constraint violation on either engine, so that callers can turn a race
// lost to a concurrent insert into a conflict.
func IsUniqueViolation(err error) bool {
	if e, ok := errors.AsType[*pgconn.PgError](err); ok {
		return e.Code == "23505"
	}
	if e, ok := errors.AsType[*sqlite.Error](err); ok {
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	return false
}

// IsForeignKeyViolation reports whether err is a FOREIGN KEY constraint
// violation on either engine.
func IsForeignKeyViolation(err error) bool {
	if e, ok := errors.AsType[*pgconn.PgError](err); ok {
		return e.Code == "23503"
	}
	if e, ok := errors.AsType[*sqlite.Error](err); ok {
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	e, ok := errors.AsType[*sqlite.Error](err)
	return ok && e.Code()&0xff == sqlite3.SQLITE_BUSY
}
