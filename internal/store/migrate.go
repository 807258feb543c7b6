package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrateLockClass is the first key of the PostgreSQL advisory lock that
// serialises migrations ("conf" in ASCII); the second key is a hash of the
// current schema, so that databases sharing a server in different schemas
// do not wait for each other.
const migrateLockClass = 0x636f6e66

// migrate applies every pending migration, each in its own transaction.
func (db *DB) migrate(ctx context.Context) error {
	list := migrations()
	for i, m := range list {
		if m.version != i+1 {
			return fmt.Errorf("migration %q has version %d, want %d: versions must count up from 1", m.name, m.version, i+1)
		}
	}

	var applied map[int]bool
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockMigrations(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at BIGINT NOT NULL
)`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		var err error
		applied, err = appliedVersions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrating %s state store: %w", db.dialect, err)
	}

	for v := range applied {
		if v > len(list) {
			// A newer Conflux migrated this database. Carry on: migrations
			// only add, so the tables this version knows are still there.
			db.logger.Warn("state store schema is newer than this binary",
				"schema_version", v, "known_version", len(list))
			break
		}
	}

	for _, m := range list {
		if applied[m.version] {
			continue
		}
		if err := db.applyMigration(ctx, m); err != nil {
			return fmt.Errorf("migrating %s state store to version %d (%s): %w", db.dialect, m.version, m.name, err)
		}
	}
	return nil
}

// applyMigration runs m and records it, unless another process recorded it
// first (checked under the migration lock).
func (db *DB) applyMigration(ctx context.Context, m migration) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockMigrations(ctx, tx); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
			return fmt.Errorf("reading schema_migrations: %w", err)
		}
		if n > 0 {
			return nil
		}
		start := time.Now()
		if _, err := tx.ExecContext(ctx, m.statements(db.dialect)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("recording in schema_migrations: %w", err)
		}
		db.logger.Info("applied migration", "version", m.version, "name", m.name, "duration", time.Since(start))
		return nil
	})
}

// lockMigrations makes the rest of tx exclusive among processes migrating
// the same database. SQLite needs nothing: InTx's BEGIN IMMEDIATE already
// holds the database's write lock.
func (db *DB) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if db.dialect != Postgres {
		return nil
	}
	// coalesce: with no existing schema on the search_path, hashtext(NULL)
	// would make the lock call a no-op; CREATE TABLE then fails clearly.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`, migrateLockClass); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	return nil
}

func appliedVersions(ctx context.Context, tx *sql.Tx) (map[int]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := make(map[int]bool)
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("reading schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	return applied, nil
}
