package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Bulk gathers rows for one statement — head, then one row template per
// row, then tail, as in
//
//	INSERT INTO t (a, b) VALUES | (?, ?) | ON CONFLICT (a) DO NOTHING
//
// — and runs them in a transaction at Flush in the way each engine is
// fastest at: one prepared single-row statement executed per row on
// SQLite (in process, where a statement costs no round trip and a long
// one costs more to compile than it saves), statements of up to a few
// hundred rows on PostgreSQL (one round trip each). A row template may
// be any parenthesised list, so UPDATE … FROM (VALUES …) works too.
type Bulk struct {
	db              *DB
	head, row, tail string
	cols            int
	args            []any
	rows            int
	perStmt         int
	full            *sql.Stmt
	fullTx          *sql.Tx
	label           string
}

// NewBulk returns an empty Bulk for the statement head + rows + tail;
// label names it in errors.
func (db *DB) NewBulk(label, head, row, tail string) *Bulk {
	cols := strings.Count(row, "?")
	per := 1
	if db.dialect == Postgres {
		per = max(1, min(500, 60000/max(cols, 1)))
	}
	return &Bulk{db: db, head: head, row: row, tail: tail, cols: cols, perStmt: per, label: label}
}

// Add appends a row; len(args) must be the row template's placeholders.
func (b *Bulk) Add(args ...any) {
	b.args = append(b.args, args...)
	b.rows++
}

// Len is the number of rows waiting.
func (b *Bulk) Len() int { return b.rows }

// Reset drops the waiting rows.
func (b *Bulk) Reset() {
	clear(b.args)
	b.args, b.rows = b.args[:0], 0
}

// Flush runs the waiting rows in tx and empties the Bulk.
func (b *Bulk) Flush(ctx context.Context, tx *sql.Tx) error {
	defer b.Reset()
	for done := 0; done < b.rows; {
		n := min(b.perStmt, b.rows-done)
		args := b.args[done*b.cols : (done+n)*b.cols]
		var err error
		if n == b.perStmt {
			var st *sql.Stmt
			if st, err = b.fullStmt(ctx, tx); err == nil {
				_, err = st.ExecContext(ctx, args...)
			}
		} else {
			_, err = tx.ExecContext(ctx, b.statement(n), args...)
		}
		if err != nil {
			return fmt.Errorf("writing %d rows (%s): %w", n, b.label, err)
		}
		done += n
	}
	return nil
}

// fullStmt is the statement of a full chunk, prepared once per
// transaction.
func (b *Bulk) fullStmt(ctx context.Context, tx *sql.Tx) (*sql.Stmt, error) {
	if b.full != nil && b.fullTx == tx {
		return b.full, nil
	}
	st, err := tx.PrepareContext(ctx, b.statement(b.perStmt))
	if err != nil {
		return nil, err
	}
	b.full, b.fullTx = st, tx
	return st, nil
}

func (b *Bulk) statement(rows int) string {
	var sb strings.Builder
	sb.Grow(len(b.head) + rows*(len(b.row)+2) + len(b.tail))
	sb.WriteString(b.head)
	for i := range rows {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(b.row)
	}
	sb.WriteString(b.tail)
	return b.db.Rebind(sb.String())
}
