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
	_, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM delivery_positions WHERE destination_id = ? OR substr(destination_id, 1, ?) = ?`),
		dest, len(dest)+1, dest+"/")
	if err == nil && !keepJobs {
		_, err = tx.ExecContext(ctx, db.Rebind(`DELETE FROM delivery_jobs WHERE destination_id = ?`), dest)
	}
	if err != nil {
		return fmt.Errorf("resetting the delivery state of destination %q: %w", dest, err)
	}
	return nil
}
