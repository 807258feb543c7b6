package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver/warehouse"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// open returns a loader on a fresh schema-scoped connection of the test
// PostgreSQL (its search_path is a new schema, dropped after the test; the
// source schemas the loader creates are dropped too).
func open(t testing.TB) (*Loader, string) {
	t.Helper()
	url := storetest.PostgresSchema(t)
	l, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	source := fmt.Sprintf("src_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_, _ = l.pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+ident(source)+` CASCADE`)
	})
	return l, source
}

func rows(t *testing.T, events ...string) []warehouse.Row {
	t.Helper()
	var out []warehouse.Row
	for _, js := range events {
		doc, err := event.Decode([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, warehouse.Rows(doc, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))...)
	}
	return out
}

func load(t *testing.T, l *Loader, source string, events ...string) Stats {
	t.Helper()
	st, err := l.Load(t.Context(), source, rows(t, events...))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func query(t *testing.T, l *Loader, q string) string {
	t.Helper()
	var s string
	if err := l.pool.QueryRow(t.Context(), q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func TestLoad(t *testing.T) {
	l, src := open(t)
	s := ident(src)
	track := func(id string, props string) string {
		return fmt.Sprintf(`{"type":"track","event":"Order Completed","messageId":%q,"userId":"u1","receivedAt":"2026-12-01T10:00:00Z","properties":%s}`, id, props)
	}
	st := load(t, l, src, track("m1", `{"revenue":10,"coupon":"A"}`), track("m2", `{"revenue":12}`))
	if st.Rows["tracks"] != 2 || st.Rows["order_completed"] != 2 {
		t.Errorf("first load: %v", st.Rows)
	}
	// The same events again (a retried load): nothing added.
	st = load(t, l, src, track("m1", `{"revenue":10,"coupon":"A"}`), track("m2", `{"revenue":12}`))
	if st.Rows["tracks"] != 0 || st.Rows["order_completed"] != 0 {
		t.Errorf("reload: %v", st.Rows)
	}
	if n := query(t, l, `SELECT count(*)::text FROM `+s+`.order_completed`); n != "2" {
		t.Errorf("%s rows after the reload", n)
	}
	if typ := query(t, l, `SELECT data_type FROM information_schema.columns WHERE table_schema = '`+src+`' AND table_name = 'order_completed' AND column_name = 'revenue'`); typ != "bigint" {
		t.Errorf("revenue is %s", typ)
	}
	// A new property adds a column; a fractional revenue widens it to
	// double precision; a text one widens it to text, old values kept.
	load(t, l, src, track("m3", `{"revenue":9.5,"giftWrap":true}`))
	if typ := query(t, l, `SELECT data_type FROM information_schema.columns WHERE table_schema = '`+src+`' AND table_name = 'order_completed' AND column_name = 'revenue'`); typ != "double precision" {
		t.Errorf("revenue after 9.5 is %s", typ)
	}
	load(t, l, src, track("m4", `{"revenue":"free"}`))
	if got := query(t, l, `SELECT string_agg(revenue, ',' ORDER BY id) FROM `+s+`.order_completed`); got != "10,12,9.5,free" {
		t.Errorf("revenues after widening to text: %s", got)
	}
	if got := query(t, l, `SELECT string_agg(coalesce(gift_wrap::text, '-'), ',' ORDER BY id) FROM `+s+`.order_completed`); got != "-,-,true,-" {
		t.Errorf("gift_wrap: %s", got)
	}
	if got := query(t, l, `SELECT event_text || '/' || event || '/' || to_char(received_at AT TIME ZONE 'UTC', 'HH24:MI') FROM `+s+`.tracks WHERE id = 'm1'`); got != "Order Completed/order_completed/10:00" {
		t.Errorf("tracks row: %s", got)
	}
}

func TestLoadUsers(t *testing.T) {
	l, src := open(t)
	s := ident(src)
	ident := func(id, at, traits string) string {
		return fmt.Sprintf(`{"type":"identify","messageId":%q,"userId":"u1","receivedAt":%q,"traits":%s}`, id, at, traits)
	}
	load(t, l, src, ident("m1", "2026-12-01T10:00:00Z", `{"plan":"free","name":"Ada"}`))
	// Newer: its values win; an older one that arrives late changes nothing.
	load(t, l, src, ident("m2", "2026-12-01T11:00:00Z", `{"plan":"pro"}`), ident("m0", "2026-12-01T09:00:00Z", `{"plan":"trial","name":"Old"}`))
	if got := query(t, l, `SELECT plan || '/' || name FROM `+s+`.users WHERE id = 'u1'`); got != "pro/Ada" {
		t.Errorf("users row: %s", got)
	}
	if n := query(t, l, `SELECT count(*)::text FROM `+s+`.identifies`); n != "3" {
		t.Errorf("%s identifies", n)
	}
	load(t, l, src, `{"type":"group","messageId":"g1","userId":"u1","groupId":"acme","traits":{"employees":5}}`,
		`{"type":"alias","messageId":"a1","userId":"u1","previousId":"anon"}`,
		`{"type":"page","messageId":"p1","anonymousId":"anon","name":"Home","properties":{"order":1}}`)
	if got := query(t, l, `SELECT group_id || '/' || employees FROM `+s+`.groups`); got != "acme/5" {
		t.Errorf("groups: %s", got)
	}
	if got := query(t, l, `SELECT _order::text FROM `+s+`.pages`); got != "1" {
		t.Errorf("pages._order: %s", got)
	}
	if got := query(t, l, `SELECT previous_id FROM `+s+`.aliases`); got != "anon" {
		t.Errorf("aliases: %s", got)
	}
}
