package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver/warehouse"
	"github.com/confluxcdp/conflux/internal/event"
)

// BenchmarkLoad loads 100,000 tracks of five event names (~600 bytes each:
// properties, a context with library, page and userAgent) in loads of
// 10,000 into the local PostgreSQL, and reports warehouse rows per second
// (each track is a row of tracks and one of its event's table).
//
//	go test ./internal/deliver/warehouse/postgres -run '^$' -bench Load -benchtime 1x
func BenchmarkLoad(b *testing.B) {
	const events, perLoad = 100_000, 10_000
	names := []string{"Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Signed In"}
	var all []warehouse.Row
	loaded := time.Now()
	for i := range events {
		js := fmt.Sprintf(`{"type":"track","event":%q,"messageId":"m-%d","userId":"u-%d","anonymousId":"a-%d",
			"timestamp":"2026-12-01T10:00:00.000Z","receivedAt":"2026-12-01T10:00:00.120Z","sentAt":"2026-12-01T10:00:00.010Z",
			"context":{"library":{"name":"analytics.js","version":"2.11.1"},"page":{"path":"/p/%d","url":"https://shop.example.com/p/%d","title":"Shop"},
			"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/120.0.0.0"},
			"properties":{"product_id":"p-%d","price":%d.99,"quantity":%d,"category":"shoes","currency":"USD"}}`,
			names[i%len(names)], i, i%5000, i%7000, i%900, i%900, i%900, i%200, 1+i%3)
		doc, err := event.Decode([]byte(js))
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, warehouse.Rows(doc, loaded)...)
	}
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		bl, bsrc := open(b)
		b.StartTimer()
		start := time.Now()
		var n int64
		for j := 0; j < len(all); j += 2 * perLoad {
			st, err := bl.Load(b.Context(), bsrc, all[j:min(j+2*perLoad, len(all))])
			if err != nil {
				b.Fatal(err)
			}
			for _, v := range st.Rows {
				n += v
			}
		}
		took := time.Since(start)
		b.StopTimer()
		if n != int64(len(all)) {
			b.Fatalf("%d rows written, want %d", n, len(all))
		}
		b.ReportMetric(float64(n)/took.Seconds(), "rows/s")
		b.Logf("%d rows (%d tracks) in %v: %.0f rows/s", n, events, took.Round(time.Millisecond), float64(n)/took.Seconds())
	}
}
