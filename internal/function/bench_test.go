package function

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// trackEvent is a realistic track event of about 1 KB, as analytics.js
// sends it after the Tracking API stamped it.
const trackEvent = `{"type":"track","event":"Order Completed","messageId":"ajs-next-1f3c2e0d9a8b7c6d5e4f3a2b1c0d9e8f","anonymousId":"5f2b1c3d-9e8f-4a7b-8c6d-1e2f3a4b5c6d","userId":"user_8h2k4m6n","timestamp":"2026-03-14T09:26:53.589Z","sentAt":"2026-03-14T09:26:53.601Z","receivedAt":"2026-03-14T09:26:53.871Z","originalTimestamp":"2026-03-14T09:26:53.589Z","properties":{"order_id":"50314b8e9bcf000000000000","affiliation":"Google Store","total":27.5,"subtotal":22.5,"revenue":25,"shipping":3,"tax":2,"discount":2.5,"coupon":"hasbros","currency":"USD","products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly: 3rd Edition","price":19,"quantity":1,"category":"Games"},{"product_id":"505bd76785ebb509fc183733","sku":"46493-32","name":"Uno Card Game","price":3,"quantity":2,"category":"Games"}]},"context":{"library":{"name":"analytics.js","version":"next-1.70.0"},"page":{"path":"/checkout/complete","referrer":"https://shop.example.com/cart","search":"","title":"Thank you","url":"https://shop.example.com/checkout/complete"},"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36","locale":"en-US","ip":"203.0.113.7","campaign":{"name":"spring","source":"newsletter","medium":"email"}},"integrations":{},"writeKey":"wk_9f8e7d6c5b4a"}`

func reportEventsPerSec(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkInsert runs a trivial insert function on a ~1 KB track event.
// Run it with -cpu 1: the figure is per core.
func BenchmarkInsert(b *testing.B) {
	p, err := Compile(Spec{ID: "bench-insert", Kind: KindInsert,
		Code: `async function onTrack(event) { event.properties.x = 1; return event }`})
	if err != nil {
		b.Fatal(err)
	}
	r := NewRunner(Options{})
	defer r.Close()
	ev := EventIn{Type: "track", JSON: []byte(trackEvent)}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(trackEvent)))
	n := 0
	for b.Loop() {
		res := r.Insert(ctx, p, ev)
		if res.Status != OK {
			b.Fatal(res.Outcome.Err())
		}
		n++
	}
	reportEventsPerSec(b, n)
}

const benchDestination = `
function body(event) {
  return {
    event_name: event.event, user: event.userId || event.anonymousId,
    ts: event.timestamp, props: event.properties, page: event.context && event.context.page && event.context.page.url,
  }
}
function headers(settings) {
  return { Authorization: "Basic " + btoa(settings.apiKey + ":"), "Content-Type": "application/json" }
}
async function onTrack(event, settings) {
  const url = new URL("/v1/events", settings.endpoint)
  url.searchParams.set("source", "conflux")
  const res = await fetch(url, { method: "POST", headers: headers(settings), body: JSON.stringify(body(event)) })
  if (res.status >= 500 || res.status === 429) throw new RetryError("HTTP " + res.status)
}
async function onBatch(events, settings) {
  const res = await fetch(settings.endpoint + "/v1/batch", { method: "POST", headers: headers(settings), body: JSON.stringify(events.map(body)) })
  if (res.status >= 500 || res.status === 429) throw new RetryError("HTTP " + res.status)
  return events.map(() => ({ status: res.status }))
}
`

// BenchmarkDestination runs a destination function that maps each event
// and posts it to a loopback server answering 200: one event per call
// (onTrack), and 100 events per call (onBatch). Run it with -cpu 1: the
// server shares the core, as the figure counts what one core does.
func BenchmarkDestination(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	for _, tc := range []struct {
		name  string
		code  string
		batch int
	}{
		// Without onBatch, Deliver calls onTrack for each event.
		{"onTrack", benchDestination + "\nonBatch = undefined\n", 1},
		{"onBatch100", benchDestination, 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			code := tc.code
			p, err := Compile(Spec{ID: "bench-dest", Kind: KindDestination, Code: code,
				Settings: map[string]any{"apiKey": "sk_live_1234", "endpoint": srv.URL}, AllowedHosts: []string{u.Host}})
			if err != nil {
				b.Fatal(err)
			}
			r := NewRunner(Options{})
			defer r.Close()
			events := make([]EventIn, tc.batch)
			for i := range events {
				events[i] = EventIn{Type: "track", JSON: []byte(trackEvent)}
			}
			ctx := context.Background()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				res := r.Deliver(ctx, p, events)
				for _, o := range res.Outcomes {
					if o.Status != OK {
						b.Fatal(o.Err())
					}
				}
				n += len(events)
			}
			reportEventsPerSec(b, n)
		})
	}
}
