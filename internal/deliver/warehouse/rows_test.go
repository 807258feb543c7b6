package warehouse

import (
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
)

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"Order Completed":       "order_completed",
		"orderCompleted":        "order_completed",
		"HTTPServerError":       "http_server_error",
		"product-id":            "product_id",
		"  spaced  out  ":       "spaced_out",
		"user":                  "_user",
		"Group":                 "_group",
		"2fa enabled":           "_2fa_enabled",
		"already_snake":         "already_snake",
		"ÉtéPrix":               "été_prix",
		"$$$":                   "",
		"a.b.c":                 "a_b_c",
		strings.Repeat("x", 70): strings.Repeat("x", 63),
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Join("_user", "_2nd"); got != "_user_2nd" {
		t.Errorf("Join = %q", got)
	}
}

func TestWiden(t *testing.T) {
	for _, tc := range []struct{ a, b, want Type }{
		{Bigint, Bigint, Bigint}, {Bigint, Double, Double}, {Double, Bigint, Double},
		{Bigint, Text, Text}, {Boolean, Bigint, Text}, {Timestamp, Text, Text}, {Timestamp, Bigint, Text},
	} {
		if got := Widen(tc.a, tc.b); got != tc.want {
			t.Errorf("Widen(%s, %s) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
}

func rowsOf(t *testing.T, js string) map[string]Row {
	t.Helper()
	doc, err := event.Decode([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Row{}
	for _, r := range Rows(doc, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)) {
		out[r.Table] = r
	}
	return out
}

func want(t *testing.T, r Row, col string, typ Type, v any) {
	t.Helper()
	got, ok := r.Values[col]
	if !ok {
		t.Errorf("%s: no column %s (have %v)", r.Table, col, r.Values)
		return
	}
	if got.Type != typ || got.V != v {
		t.Errorf("%s.%s = %v (%s), want %v (%s)", r.Table, col, got.V, got.Type, v, typ)
	}
}

func absent(t *testing.T, r Row, cols ...string) {
	t.Helper()
	for _, c := range cols {
		if v, ok := r.Values[c]; ok {
			t.Errorf("%s.%s = %v; want no such column", r.Table, c, v)
		}
	}
}

func TestRowsTrack(t *testing.T) {
	rows := rowsOf(t, `{"type":"track","event":"Order Completed","messageId":"m1","userId":"u1","anonymousId":"a1",
		"timestamp":"2026-12-01T10:00:00.000Z","receivedAt":"2026-12-01T10:00:01.000Z","sentAt":"2026-12-01T09:59:59Z",
		"context":{"app":{"version":"3.2"},"ip":"203.0.113.9","library":{"name":"analytics.js"}},
		"properties":{"revenue":19.99,"quantity":2,"coupon":null,"gift":true,"productId":"p-1","shippedAt":"2026-12-02T00:00:00Z",
			"address":{"street":"1 Main St","zip":12345},"products":[{"sku":"s1"},{"sku":"s2"}],"user_id":"spoof","id":"spoof","context":{"x":1},
			"user":{"id":"also spoofed"},"order":"reserved"}}`)
	tr, ev := rows["tracks"], rows["order_completed"]
	if len(rows) != 2 {
		t.Fatalf("rows %v", rows)
	}
	for _, r := range []Row{tr, ev} {
		want(t, r, "id", Text, "m1")
		want(t, r, "user_id", Text, "u1")
		want(t, r, "anonymous_id", Text, "a1")
		want(t, r, "event", Text, "order_completed")
		want(t, r, "event_text", Text, "Order Completed")
		want(t, r, "timestamp", Timestamp, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
		want(t, r, "received_at", Timestamp, time.Date(2026, 12, 1, 10, 0, 1, 0, time.UTC))
		want(t, r, "context_app_version", Text, "3.2")
		want(t, r, "context_library_name", Text, "analytics.js")
		want(t, r, "uuid_ts", Timestamp, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	}
	absent(t, tr, "revenue")
	want(t, ev, "revenue", Double, 19.99)
	want(t, ev, "quantity", Bigint, int64(2))
	want(t, ev, "gift", Boolean, true)
	want(t, ev, "product_id", Text, "p-1")
	want(t, ev, "shipped_at", Timestamp, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	want(t, ev, "address_street", Text, "1 Main St")
	want(t, ev, "address_zip", Bigint, int64(12345))
	want(t, ev, "products", Text, `[{"sku":"s1"},{"sku":"s2"}]`)
	want(t, ev, "_order", Text, "reserved")
	absent(t, ev, "coupon", "context_x")
	if ev.Values["user_id"].V != "u1" || ev.Values["id"].V != "m1" {
		t.Errorf("a property overwrote a common column: %v %v", ev.Values["user_id"], ev.Values["id"])
	}
}

func TestRowsOtherTypes(t *testing.T) {
	rows := rowsOf(t, `{"type":"identify","messageId":"m2","userId":"u1","receivedAt":"2026-12-01T10:00:00Z","traits":{"email":"a@x.io","firstName":"Ada","plan":{"name":"pro"}}}`)
	want(t, rows["identifies"], "email", Text, "a@x.io")
	want(t, rows["identifies"], "id", Text, "m2")
	u := rows["users"]
	if !u.Upsert {
		t.Error("users is not an upsert")
	}
	want(t, u, "id", Text, "u1")
	want(t, u, "first_name", Text, "Ada")
	want(t, u, "plan_name", Text, "pro")
	absent(t, u, "anonymous_id", "user_id")

	rows = rowsOf(t, `{"type":"identify","messageId":"m3","anonymousId":"a9","traits":{"x":1}}`)
	if _, ok := rows["users"]; ok || len(rows) != 1 {
		t.Errorf("an anonymous identify makes %v; want identifies only", rows)
	}

	rows = rowsOf(t, `{"type":"group","messageId":"m4","userId":"u1","groupId":42,"traits":{"employees":20}}`)
	want(t, rows["groups"], "group_id", Text, "42")
	want(t, rows["accounts"], "id", Text, "42")
	want(t, rows["accounts"], "employees", Bigint, int64(20))

	rows = rowsOf(t, `{"type":"page","messageId":"m5","anonymousId":"a","name":"Pricing","properties":{"path":"/pricing"}}`)
	want(t, rows["pages"], "name", Text, "Pricing")
	want(t, rows["pages"], "path", Text, "/pricing")
	rows = rowsOf(t, `{"type":"screen","messageId":"m6","anonymousId":"a","name":"Home"}`)
	want(t, rows["screens"], "name", Text, "Home")
	rows = rowsOf(t, `{"type":"alias","messageId":"m7","userId":"new","previousId":"old"}`)
	want(t, rows["aliases"], "previous_id", Text, "old")

	for _, js := range []string{`{"type":"track","messageId":"m8","userId":"u","event":"!!!"}`, `{"type":"track","userId":"u","event":"E"}`,
		`{"type":"group","messageId":"m9","userId":"u"}`} {
		if r := rowsOf(t, js); len(r) != 0 {
			t.Errorf("%s makes %v; want no rows", js, r)
		}
	}
}
