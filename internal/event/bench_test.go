package event

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// sampleBatch builds a Segment-shaped batch like analytics-next or
// analytics-go send: n track events of about 600 bytes each.
func sampleBatch(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"batch":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","event":"Product Viewed","userId":"user-%06d","anonymousId":"4f7c8a52-1c2e-4b7a-9d1e-%012d",`+
			`"messageId":"ajs-next-1700000000000-%08d","timestamp":"2026-11-22T09:59:59.123Z",`+
			`"properties":{"product_id":"507f1f77bcf86cd799439011","sku":"G-32","category":"Games","name":"Monopoly: 3rd Edition","brand":"Hasbro","variant":"200 pieces","price":18.99,"quantity":1,"currency":"USD","url":"https://www.example.com/product/path"},`+
			`"context":{"library":{"name":"analytics.js","version":"next-1.84.3"},"page":{"path":"/product/path","title":"Monopoly","url":"https://www.example.com/product/path"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64)","locale":"en-US"}}`, i, i, i)
	}
	b.WriteString(`],"sentAt":"2026-11-22T10:00:00.000Z","writeKey":"wk"}`)
	return []byte(b.String())
}

// BenchmarkParseAndNormalize measures the ingest hot path without HTTP or
// the log: parse a 100-event batch and frame its normalized records.
func BenchmarkParseAndNormalize(b *testing.B) {
	body := sampleBatch(100)
	lim := DefaultLimits()
	var p Payload
	var out []byte
	var rej []Rejection
	meta := Meta{SourceID: "web", ReceivedAt: time.Now(), IP: "192.0.2.1"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(body, "", lim); err != nil {
			b.Fatal(err)
		}
		out, _, rej = p.AppendRecords(out[:0], meta, lim, rej[:0])
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
