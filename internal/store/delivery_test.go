package store_test

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func TestForgetDelivery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.SQL().ExecContext(ctx, db.Rebind(q), args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		// Three destinations whose ids share a prefix, one with a LIKE
		// wildcard: each with a position, shards and a job.
		for _, dest := range []string{"d1", "d1x", "d1_"} {
			for _, key := range []string{dest, dest + "/0-of-2", dest + "/1-of-2"} {
				exec(`INSERT INTO delivery_positions (destination_id, seq, done, updated_at) VALUES (?, 1, ?, 0)`, key, []byte{})
			}
			exec(`INSERT INTO delivery_jobs (destination_id, id, message_id, source_id, event_type, event, received_at, attempts,
	first_attempt_at, next_attempt_at, last_status, last_reason, last_error, last_request, last_response) VALUES (?, '1.0', 'm', 's', 'track', '{}', 0, 1, 0, 0, 500, '', '', ?, ?)`,
				dest, []byte{}, []byte{})
		}
		state := func() string {
			t.Helper()
			var out []string
			for _, q := range []string{`SELECT destination_id FROM delivery_positions ORDER BY destination_id`, `SELECT destination_id FROM delivery_jobs ORDER BY destination_id`} {
				rows, err := db.SQL().QueryContext(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for rows.Next() {
					var id string
					_ = rows.Scan(&id)
					ids = append(ids, id)
				}
				rows.Close()
				out = append(out, fmt.Sprint(ids))
			}
			return out[0] + " jobs " + out[1]
		}
		forget := func(dest string, keepJobs bool) {
			t.Helper()
			if err := db.InTx(ctx, func(tx *sql.Tx) error { return db.ForgetDelivery(ctx, tx, dest, keepJobs) }); err != nil {
				t.Fatal(err)
			}
		}

		forget("d1", true) // re-enabled: positions go, retries stay
		if got, want := state(), "[d1_ d1_/0-of-2 d1_/1-of-2 d1x d1x/0-of-2 d1x/1-of-2] jobs [d1 d1_ d1x]"; got != want {
			t.Errorf("after re-enabling d1: %s, want %s", got, want)
		}
		forget("d1_", false) // deleted: positions and retries go
		if got, want := state(), "[d1x d1x/0-of-2 d1x/1-of-2] jobs [d1 d1x]"; got != want {
			t.Errorf("after deleting d1_: %s, want %s", got, want)
		}

		// After a deletion, only the state of a destination that does not
		// exist (again) goes.
		exec(`INSERT INTO destinations (id, name, type, enabled, settings, filters, delivery, origin, created_at, updated_at)
VALUES ('d1x', '', 'webhook', TRUE, '{}', '[]', '{}', 'api', 0, 0)`)
		for _, dest := range []string{"d1", "d1x"} {
			if err := db.ForgetDeleted(ctx, dest); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := state(), "[d1x d1x/0-of-2 d1x/1-of-2] jobs [d1x]"; got != want {
			t.Errorf("after ForgetDeleted of d1 (gone) and d1x (exists): %s, want %s", got, want)
		}
	})
}
