package store

import (
	"context"
	"database/sql"
	"fmt"
)

// ForgetDelivery deletes, in tx, destination dest's delivery positions —
// of every shard of its queue, "<dest>" and "<dest>/<k>-of-<n>" — and,
// unless keepJobs, its jobs awaiting retry, so that its queue starts again
// at the end of the processed log. The config repository calls it in the
// transaction that creates, deletes or re-enables a destination: the
// reset then happens once, with the change, rather than on every node
// that sees it (a node seeing it late would delete what a new queue had
// stored since). Dead letters stay, for inspection and replay.
func (db *DB) ForgetDelivery(ctx context.Context, tx *sql.Tx, dest string, keepJobs bool) error {
	return db.forgetDelivery(ctx, tx, dest, keepJobs, "")
}

// ForgetDeleted deletes destination dest's delivery positions and jobs if
// the destination no longer exists. The delivery engine calls it once its
// queues of a destination gone from the workspace have stopped: what they
// stored after the deletion's own reset is removed too, and nothing is
// removed if a destination of that id was created meanwhile.
func (db *DB) ForgetDeleted(ctx context.Context, dest string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		return db.forgetDelivery(ctx, tx, dest, false, ` AND NOT EXISTS (SELECT 1 FROM destinations WHERE id = ?)`)
	})
}

// forgetDelivery deletes the delivery state of dest where also (a further
// condition on dest, or "") holds.
func (db *DB) forgetDelivery(ctx context.Context, tx *sql.Tx, dest string, keepJobs bool, also string) error {
	extra := func(args ...any) []any {
		if also != "" {
			args = append(args, dest)
		}
		return args
	}
	_, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM delivery_positions WHERE (destination_id = ? OR substr(destination_id, 1, ?) = ?)`+also),
		extra(dest, len(dest)+1, dest+"/")...)
	if err == nil && !keepJobs {
		_, err = tx.ExecContext(ctx, db.Rebind(`DELETE FROM delivery_jobs WHERE destination_id = ?`+also), extra(dest)...)
	}
	if err != nil {
		return fmt.Errorf("resetting the delivery state of destination %q: %w", dest, err)
	}
	return nil
}
