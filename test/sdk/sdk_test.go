// Package sdk_test sends events through Segment's own client libraries —
// analytics-go, and @segment/analytics-node run by node — to a real Conflux
// server, then reads the durable log back and checks every event field by
// field: what the SDK sent must arrive intact, and what the server adds
// (receivedAt, the skew-corrected timestamp, the batch context, context.ip
// only where Segment would set it) must follow spec §1.
//
// The node tests need node and npm on PATH; they install their pinned
// dependencies (node/package-lock.json) with `npm ci` when node/node_modules
// is missing. Without node they skip, unless CONFLUX_REQUIRE_SERVICES=1.
package sdk_test

import (
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/server/servertest"
)

// logged is one record of the log, its JSON decoded.
type logged struct {
	SourceID string
	Raw      string
	Fields   map[string]any
}

// readLog stops srv and returns every record of its log.
func readLog(t *testing.T, srv *servertest.Server) []logged {
	t.Helper()
	srv.Stop(t)
	var out []logged
	for i, r := range servertest.ReadIngest(t, srv.DataDir) {
		var m map[string]any
		if err := json.Unmarshal(r.JSON, &m); err != nil {
			t.Fatalf("record %d is not a JSON object: %v\n%s", i, err, r.JSON)
		}
		out = append(out, logged{SourceID: r.SourceID, Raw: string(r.JSON), Fields: m})
	}
	return out
}

// byMessageID indexes records by messageId and fails on a record without
// one or on a duplicate.
func byMessageID(t *testing.T, recs []logged) map[string]logged {
	t.Helper()
	m := make(map[string]logged, len(recs))
	for _, r := range recs {
		id, ok := r.Fields["messageId"].(string)
		if !ok || id == "" {
			t.Fatalf("record without a string messageId: %s", r.Raw)
		}
		if _, dup := m[id]; dup {
			t.Fatalf("messageId %q is in the log twice", id)
		}
		m[id] = r
	}
	return m
}

// jsonValue returns v as encoding/json decodes it into an any: the form
// the log's records take after json.Unmarshal, so the two compare with
// reflect.DeepEqual.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding %#v: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return out
}

// checkEqualJSON compares a field of the record with want, as decoded JSON.
func checkEqualJSON(t *testing.T, r logged, field string, want any) {
	t.Helper()
	got, ok := r.Fields[field]
	if !ok {
		t.Errorf("%s is missing; record: %s", field, r.Raw)
		return
	}
	if w := jsonValue(t, want); !reflect.DeepEqual(got, w) {
		t.Errorf("%s = %s, want %s", field, mustJSON(got), mustJSON(w))
	}
}

// checkKeys fails unless the record's top-level keys are exactly want.
func checkKeys(t *testing.T, r logged, want []string) {
	t.Helper()
	var got []string
	for k := range r.Fields {
		got = append(got, k)
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("top-level keys = %v, want %v; record: %s", got, want, r.Raw)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// serverTime matches the times the server writes (receivedAt, timestamp).
var serverTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// timeField parses an ISO-8601 string field of the record.
func timeField(t *testing.T, r logged, field string) (time.Time, bool) {
	t.Helper()
	s, ok := r.Fields[field].(string)
	if !ok {
		t.Errorf("%s is %#v, want an ISO-8601 string; record: %s", field, r.Fields[field], r.Raw)
		return time.Time{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("%s %q: %v", field, s, err)
		return time.Time{}, false
	}
	return ts, true
}

// window is the span of the test's clock in which the events were sent.
type window struct{ start, end time.Time }

func (w window) contains(ts time.Time) bool {
	// The server writes milliseconds, truncating.
	return !ts.Before(w.start.Truncate(time.Millisecond)) && !ts.After(w.end)
}

// wantTimes is what the record's times must be.
type wantTimes struct {
	// orig is the originalTimestamp the SDK sent; zero means the SDK's own
	// clock at the call, which must then lie in the window.
	orig time.Time
	// sentAt is the batch's sentAt; zero means only "in the window".
	sentAt time.Time
}

// checkTimes checks receivedAt, sentAt, originalTimestamp and timestamp
// (spec §1.9): timestamp = receivedAt - (sentAt - originalTimestamp).
func checkTimes(t *testing.T, r logged, w window, want wantTimes) {
	t.Helper()
	for _, f := range []string{"receivedAt", "timestamp"} {
		if s, _ := r.Fields[f].(string); !serverTime.MatchString(s) {
			t.Errorf("%s = %q, want the server's form %s", f, s, event.TimeLayout)
		}
	}
	recv, ok1 := timeField(t, r, "receivedAt")
	sent, ok2 := timeField(t, r, "sentAt")
	orig, ok3 := timeField(t, r, "originalTimestamp")
	ts, ok4 := timeField(t, r, "timestamp")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return
	}
	if !w.contains(recv) {
		t.Errorf("receivedAt %s is outside the test's window [%s, %s]", recv.Format(time.RFC3339Nano), w.start.Format(time.RFC3339Nano), w.end.Format(time.RFC3339Nano))
	}
	if want.sentAt.IsZero() {
		if !w.contains(sent) {
			t.Errorf("sentAt %s is outside the test's window", sent.Format(time.RFC3339Nano))
		}
	} else if !sent.Equal(want.sentAt) {
		t.Errorf("sentAt = %s, want the batch's %s", sent.Format(time.RFC3339Nano), want.sentAt.Format(time.RFC3339Nano))
	}
	if want.orig.IsZero() {
		if !w.contains(orig) {
			t.Errorf("originalTimestamp %s (the SDK's clock) is outside the test's window", orig.Format(time.RFC3339Nano))
		}
	} else if !orig.Equal(want.orig) {
		t.Errorf("originalTimestamp = %s, want %s", orig.Format(time.RFC3339Nano), want.orig.Format(time.RFC3339Nano))
	}
	skewed := recv.Add(-sent.Sub(orig))
	if d := ts.Sub(skewed); math.Abs(float64(d)) >= float64(time.Millisecond) {
		t.Errorf("timestamp = %s, want receivedAt - (sentAt - originalTimestamp) = %s (off by %s)",
			ts.Format(time.RFC3339Nano), skewed.Format(time.RFC3339Nano), d)
	}
	// Sender and server share this machine's clock, so the correction must
	// land next to the time the call was made for.
	if d := ts.Sub(orig); d < -time.Second || d > 5*time.Second {
		t.Errorf("timestamp %s is %s away from originalTimestamp %s; same clock, so it should be ~0", ts, d, orig)
	}
}

// netDelay is the latency the tests add between an SDK stamping a batch's
// sentAt and the server receiving it. Sender and server share one clock,
// so without it receivedAt - sentAt is under a millisecond and a server
// that skipped the skew correction (timestamp = originalTimestamp) would
// pass checkTimes.
const netDelay = 100 * time.Millisecond

// checkLatency fails unless receivedAt - sentAt reflects the added delay,
// so that checkTimes' skew check could tell a missing correction.
func checkLatency(t *testing.T, r logged, delay time.Duration) {
	t.Helper()
	recv, ok1 := timeField(t, r, "receivedAt")
	sent, ok2 := timeField(t, r, "sentAt")
	if ok1 && ok2 && recv.Sub(sent) < delay-time.Millisecond {
		t.Errorf("receivedAt - sentAt = %s, want at least the added %s", recv.Sub(sent), delay)
	}
}

// delayTransport waits before each request, as a slow network would.
type delayTransport struct {
	delay time.Duration
	next  http.RoundTripper
}

func (d delayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case <-time.After(d.delay):
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return d.next.RoundTrip(req)
}
