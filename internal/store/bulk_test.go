package store_test

import (
	"database/sql"
	"testing"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// TestBulk writes rows through Bulk on both engines — more than one
// PostgreSQL chunk, with an upsert and an UPDATE … FROM (VALUES …) — and
// reads them back.
func TestBulk(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		if _, err := db.SQL().Exec(`CREATE TABLE bulk_t (k BIGINT PRIMARY KEY, v TEXT NOT NULL, n BIGINT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		ins := db.NewBulk("bulk_t", `INSERT INTO bulk_t (k, v, n) VALUES `, `(?, ?, ?)`, ` ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE excluded.n > bulk_t.n`)
		upd := db.NewBulk("bulk_t n", `UPDATE bulk_t SET n = v.column2 FROM (VALUES `, `(CAST(? AS BIGINT), CAST(? AS BIGINT))`, `) AS v WHERE bulk_t.k = v.column1 AND bulk_t.n < v.column2`)
		err := db.InTx(t.Context(), func(tx *sql.Tx) error {
			for i := range 1234 {
				ins.Add(i, "a", 1)
			}
			if err := ins.Flush(t.Context(), tx); err != nil {
				return err
			}
			for i := range 1234 {
				ins.Add(i, "b", i%2) // only the odd ones are newer
				upd.Add(i, i%3)
			}
			if ins.Len() != 1234 {
				t.Errorf("Len = %d", ins.Len())
			}
			if err := ins.Flush(t.Context(), tx); err != nil {
				return err
			}
			return upd.Flush(t.Context(), tx)
		})
		if err != nil {
			t.Fatal(err)
		}
		var rows, b, two int
		if err := db.SQL().QueryRow(`SELECT COUNT(*), SUM(CASE WHEN v = 'b' THEN 1 ELSE 0 END), SUM(CASE WHEN n = 2 THEN 1 ELSE 0 END) FROM bulk_t`).Scan(&rows, &b, &two); err != nil {
			t.Fatal(err)
		}
		if rows != 1234 || b != 0 || two != 411 {
			// Odd i wrote n=1 again, not greater than 1: no row became b.
			t.Errorf("rows %d, b %d, n=2 %d; want 1234, 0, 411", rows, b, two)
		}
	})
}
