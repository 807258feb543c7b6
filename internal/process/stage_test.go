package process

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).flusher"),
		goleak.IgnoreTopFunction("time.Sleep"),
	)
}

// ev is the stored JSON of an event with the given messageId and userId.
func ev(id, user string) []byte {
	// Now, not a fixed day: the dedup window (30 days) is measured from
	// receivedAt, and a fixed day would fall out of it.
	at := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	return fmt.Appendf(nil, `{"type":"track","event":"Clicked","messageId":%q,"userId":%q,"context":{},"timestamp":%q,"receivedAt":%q}`, id, user, at, at)
}

// appendEvents writes one ingest message holding recs (source "web").
func appendEvents(t *testing.T, l *stream.Log, recs ...[]byte) {
	t.Helper()
	var data []byte
	for _, r := range recs {
		data = event.AppendRecord(data, "web", r)
	}
	a := stream.NewAppender(l.JetStream(), stream.AppenderOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	if err := a.Append(t.Context(), data, len(recs)); err != nil {
		t.Fatalf("appending to ingest: %v", err)
	}
}

// running is a stage running in the background.
type running struct {
	stage  *Stage
	reg    *prometheus.Registry
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func start(t *testing.T, l *stream.Log, opts Options) *running {
	t.Helper()
	r := &running{reg: prometheus.NewRegistry()}
	opts.Registerer = r.reg
	s, err := New(t.Context(), l, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.stage = s
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { _ = s.Run(ctx) })
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() { r.cancel(); r.wg.Wait() }

// waitFor waits until the stage has committed ingest up to the log's end.
func (r *running) waitFor(t *testing.T, l *stream.Log) {
	t.Helper()
	last, err := l.LastSeq(t.Context(), stream.IngestStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.stage.Position() < last {
		if time.Now().After(deadline) {
			t.Fatalf("stage at ingest seq %d after 10s, want %d", r.stage.Position(), last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *running) count(source string, o Outcome) int {
	return int(testutil.ToFloat64(r.stage.m.events.WithLabelValues(source, string(o))))
}

// processedIDs returns the messageIds in processed, in order.
func processedIDs(t *testing.T, l *stream.Log) []string {
	t.Helper()
	var ids []string
	for _, rec := range streamtest.StreamRecords(t, l, stream.ProcessedStream) {
		k, err := event.PeekKeys(rec.JSON)
		if err != nil {
			t.Fatalf("processed record %s: %v", rec.JSON, err)
		}
		ids = append(ids, string(k.MessageID))
	}
	return ids
}

func testOptions(t *testing.T) Options {
	return Options{Dir: t.TempDir(), Partitions: 4, ExpectedIDsPerDay: 1 << 14, CacheBytes: 8 << 20}
}

func TestDuplicatesAreDroppedAndCounted(t *testing.T) {
	l := streamtest.New(t)
	r := start(t, l, testOptions(t))
	// Duplicates inside one message, and across messages (groups).
	appendEvents(t, l, ev("m1", "u1"), ev("m2", "u2"), ev("m1", "u1"))
	r.waitFor(t, l)
	appendEvents(t, l, ev("m2", "u2"), ev("m3", "u3"))
	r.waitFor(t, l)

	got := processedIDs(t, l)
	if len(got) != 3 {
		t.Fatalf("processed ids %v, want m1, m2, m3 once each", got)
	}
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		if seen[id] != 1 {
			t.Errorf("%s is in processed %d times, want 1 (all: %v)", id, seen[id], got)
		}
	}
	if n := r.count("web", OutcomeDuplicate); n != 2 {
		t.Errorf("duplicates counted: %d, want 2", n)
	}
	if n := r.count("web", OutcomeProcessed); n != 3 {
		t.Errorf("processed counted: %d, want 3", n)
	}
}

func TestOneUsersEventsStayInOrder(t *testing.T) {
	l := streamtest.New(t)
	r := start(t, l, testOptions(t))
	var recs [][]byte
	for i := range 200 {
		recs = append(recs, ev(fmt.Sprintf("m%03d", i), fmt.Sprintf("u%d", i%7)))
	}
	appendEvents(t, l, recs[:100]...)
	appendEvents(t, l, recs[100:]...)
	r.waitFor(t, l)
	last := map[string]string{}
	for _, rec := range streamtest.StreamRecords(t, l, stream.ProcessedStream) {
		k, _ := event.PeekKeys(rec.JSON)
		u, id := string(k.UserID), string(k.MessageID)
		if id <= last[u] {
			t.Fatalf("user %s: %s after %s", u, id, last[u])
		}
		last[u] = id
	}
	if len(last) != 7 {
		t.Fatalf("%d users in processed, want 7", len(last))
	}
}

func TestRestartKeepsDedupOnBothSides(t *testing.T) {
	l := streamtest.New(t)
	opts := testOptions(t)
	r := start(t, l, opts)
	appendEvents(t, l, ev("a", "u1"), ev("b", "u2"), ev("c", "u3"))
	r.waitFor(t, l)
	r.stop()

	// While the stage is down: retries of a and b, and new events.
	appendEvents(t, l, ev("a", "u1"), ev("d", "u4"))
	appendEvents(t, l, ev("b", "u2"), ev("e", "u1"))
	r2 := start(t, l, opts)
	r2.waitFor(t, l)
	// After the restart: more retries.
	appendEvents(t, l, ev("c", "u3"), ev("d", "u4"), ev("f", "u5"))
	r2.waitFor(t, l)

	got := processedIDs(t, l)
	if len(got) != 6 {
		t.Fatalf("processed %v, want each of a..f once", got)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s processed twice: %v", id, got)
		}
		seen[id] = true
	}
	if n := r2.count("web", OutcomeDuplicate); n != 4 {
		t.Errorf("duplicates after restart: %d, want 4", n)
	}
}

// TestCrashBetweenPublishAndCommit publishes a group's output without
// committing its ids — what a kill -9 at that instant leaves — and checks
// that the next start repairs it: nothing of the group is written again,
// and its ids are still known as duplicates.
func TestCrashBetweenPublishAndCommit(t *testing.T) {
	l := streamtest.New(t)
	opts := testOptions(t)
	appendEvents(t, l, ev("x1", "u1"), ev("x2", "u2"), ev("x3", "u3"))

	s, err := New(t.Context(), l, opts)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := l.Read(t.Context(), stream.IngestStream, 1)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := rd.Next(t.Context(), 1<<20, time.Millisecond)
	rd.Close()
	if err != nil {
		t.Fatal(err)
	}
	g := s.prepare(t.Context(), msgs, 0, nil)
	if err := s.publish(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	s.Close() // crash: no commit

	appendEvents(t, l, ev("x2", "u2"), ev("x4", "u4"))
	r := start(t, l, opts)
	r.waitFor(t, l)
	// Order within a group follows partitions; compare as a set.
	got := processedIDs(t, l)
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	if len(got) != 4 || seen["x1"] != 1 || seen["x2"] != 1 || seen["x3"] != 1 || seen["x4"] != 1 {
		t.Fatalf("processed %v, want x1..x4 once each", got)
	}
	if n := r.count("web", OutcomeDuplicate); n != 1 {
		t.Errorf("duplicates: %d, want 1 (x2)", n)
	}
}

func TestInvalidRecordGoesToDeadLetters(t *testing.T) {
	l := streamtest.New(t)
	r := start(t, l, testOptions(t))
	appendEvents(t, l, ev("ok1", "u1"), []byte(`{"type":"track","userId":"u1"}`), []byte(`not json`), ev("ok2", "u2"))
	r.waitFor(t, l)

	if got := processedIDs(t, l); len(got) != 2 {
		t.Fatalf("processed %v, want ok1 and ok2", got)
	}
	dead := streamtest.StreamRecordsRaw(t, l, stream.DLQStream)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	for _, m := range dead {
		if !strings.HasPrefix(m.Header.Get(HeaderReason), "invalid_record: ") || m.Header.Get(HeaderSource) != "web" {
			t.Errorf("dead letter headers %v", m.Header)
		}
	}
	if n := r.count("web", OutcomeInvalid); n != 2 {
		t.Errorf("invalid counted: %d, want 2", n)
	}
}

// forwarding is a pipeline that blocks events named "Blocked" and forwards
// them to source "quarantine", and adds a field to the others.
type forwarding struct{}

func (forwarding) Process(_ context.Context, src string, rec []byte, out Emitter) Outcome {
	doc, err := event.Decode(rec)
	if err != nil {
		return OutcomeInvalid
	}
	if doc["event"] == "Blocked" {
		out.Forward("quarantine", rec)
		return OutcomeBlocked
	}
	doc["seenBy"] = "pipeline"
	b, _ := json.Marshal(doc)
	out.Emit(b)
	return OutcomeProcessed
}

func TestPipelineDecidesAndEveryRecordIsAccountedFor(t *testing.T) {
	l := streamtest.New(t)
	opts := testOptions(t)
	opts.Pipeline = forwarding{}
	r := start(t, l, opts)
	blocked := []byte(`{"type":"track","event":"Blocked","messageId":"b1","userId":"u9","context":{},"receivedAt":"2026-12-01T10:00:00.000Z"}`)
	appendEvents(t, l, ev("p1", "u1"), blocked, ev("p1", "u1"), []byte(`{}`), ev("p2", "u2"))
	r.waitFor(t, l)

	recs := streamtest.StreamRecords(t, l, stream.ProcessedStream)
	bySource := map[string]int{}
	for _, rec := range recs {
		bySource[rec.SourceID]++
		if rec.SourceID == "web" && !strings.Contains(string(rec.JSON), `"seenBy":"pipeline"`) {
			t.Errorf("web record not changed by the pipeline: %s", rec.JSON)
		}
	}
	if bySource["web"] != 2 || bySource["quarantine"] != 1 {
		t.Fatalf("processed by source %v, want web 2, quarantine 1", bySource)
	}
	received := 5
	sum := 0
	for _, o := range []Outcome{OutcomeProcessed, OutcomeDuplicate, OutcomeBlocked, OutcomeInvalid, OutcomeTooLarge} {
		sum += r.count("web", o)
	}
	if sum != received {
		t.Fatalf("outcomes of web add up to %d, want %d received", sum, received)
	}
	if n := r.count("quarantine", OutcomeForwarded); n != 1 {
		t.Errorf("forwarded to quarantine: %d, want 1", n)
	}
}

func TestPartitionCountIsFixed(t *testing.T) {
	l := streamtest.New(t)
	opts := testOptions(t)
	s, err := New(t.Context(), l, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	opts.Partitions = 8
	if _, err := New(t.Context(), l, opts); err == nil || !strings.Contains(err.Error(), "4 partitions, not 8") {
		t.Fatalf("New with another partition count: %v", err)
	}
}

func TestParsePartitions(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "0-3", want: []int{0, 1, 2, 3}},
		{in: "5", want: []int{5}},
		{in: "0-1,7", want: []int{0, 1, 7}},
		{in: "3-1", wantErr: true},
		{in: "", wantErr: true},
		{in: "a", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parsePartitions(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parsePartitions(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("parsePartitions(%q) = %v, %v", tt.in, got, err)
			}
			for _, p := range tt.want {
				if !got[p] {
					t.Fatalf("parsePartitions(%q) lacks %d", tt.in, p)
				}
			}
		})
	}
	if got := formatPartitions(0, 15); got != "0-15" {
		t.Errorf("formatPartitions(0, 15) = %q", got)
	}
}

// TestDuplicatesAcrossOverlappingGroups has each ingest message repeat ids
// of the one before it, with one message per group, so that a group is
// prepared while the one holding the first copies is still being written
// and its ids are not in the index yet.
func TestDuplicatesAcrossOverlappingGroups(t *testing.T) {
	l := streamtest.New(t)
	const msgs = 40
	for m := range msgs {
		var recs [][]byte
		for i := range 5 {
			recs = append(recs, ev(fmt.Sprintf("m%d-%d", m, i), fmt.Sprintf("u%d", i)))
			if m > 0 {
				recs = append(recs, ev(fmt.Sprintf("m%d-%d", m-1, i), fmt.Sprintf("u%d", i)))
			}
		}
		appendEvents(t, l, recs...)
	}
	opts := testOptions(t)
	opts.MaxGroupBytes = 1 // every ingest message is a group
	r := start(t, l, opts)
	r.waitFor(t, l)
	got := processedIDs(t, l)
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
		if seen[id] > 1 {
			t.Fatalf("%s processed twice", id)
		}
	}
	if len(got) != msgs*5 {
		t.Fatalf("processed %d events, want %d", len(got), msgs*5)
	}
	if n := r.count("web", OutcomeDuplicate); n != (msgs-1)*5 {
		t.Errorf("duplicates: %d, want %d", n, (msgs-1)*5)
	}
	if n := int(testutil.ToFloat64(r.stage.m.groups)); n != msgs {
		t.Errorf("%d groups, want %d (one per message)", n, msgs)
	}
}

// bigForward writes each event, and forwards a 3 MiB record with it, so
// that three events' output does not fit one log message.
type bigForward struct{ deferred atomic.Int64 }

func (p *bigForward) Process(_ context.Context, _ string, rec []byte, out Emitter) Outcome {
	out.Emit(rec)
	out.Forward("quarantine", fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", 3<<20)))
	out.Defer(func() { p.deferred.Add(1) })
	return OutcomeProcessed
}

func TestOversizedOutputIsSpilledAndCounted(t *testing.T) {
	l := streamtest.New(t)
	opts := testOptions(t)
	p := &bigForward{}
	opts.Pipeline = p
	r := start(t, l, opts)
	appendEvents(t, l, ev("a", "u1"), ev("b", "u1"), ev("c", "u1")) // one message, one partition
	r.waitFor(t, l)

	if n := r.count("web", OutcomeProcessed); n != 3 {
		t.Errorf("web processed: %d, want 3", n)
	}
	if n := r.count("quarantine", OutcomeForwarded); n != 2 {
		t.Errorf("forwarded to quarantine: %d, want the 2 that fit", n)
	}
	dead := streamtest.StreamRecordsRaw(t, l, stream.DLQStream)
	if len(dead) != 1 || !strings.HasPrefix(dead[0].Header.Get(HeaderReason), "output_too_large") {
		t.Fatalf("dead letters: %d, want the one forwarded record that did not fit", len(dead))
	}
	if n := p.deferred.Load(); n != 3 {
		t.Errorf("deferred effects ran %d times, want once per event", n)
	}
}

// halving emits 1 MiB per event, so that a group of twelve messages does
// not fit one log message and is prepared again in halves.
type halving struct{ calls, deferred atomic.Int64 }

func (p *halving) Process(_ context.Context, _ string, rec []byte, out Emitter) Outcome {
	p.calls.Add(1)
	out.Emit(append(bytes.Repeat([]byte(" "), 1<<20), rec...))
	out.Defer(func() { p.deferred.Add(1) })
	return OutcomeProcessed
}

func TestHalvedGroupsCountEachEventOnce(t *testing.T) {
	l := streamtest.New(t)
	for i := range 12 {
		appendEvents(t, l, ev(fmt.Sprintf("m%d", i), fmt.Sprintf("u%d", i)))
	}
	p := &halving{}
	opts := testOptions(t)
	opts.Pipeline = p
	r := start(t, l, opts)
	r.waitFor(t, l)
	if got := len(processedIDs(t, l)); got != 12 {
		t.Fatalf("processed %d events, want 12", got)
	}
	if p.calls.Load() <= 12 {
		t.Logf("Process ran %d times: the group was not halved, the test proves less", p.calls.Load())
	}
	if n := p.deferred.Load(); n != 12 {
		t.Errorf("deferred effects ran %d times (Process %d times), want 12", n, p.calls.Load())
	}
	if n := r.count("web", OutcomeProcessed); n != 12 {
		t.Errorf("processed counted %d, want 12", n)
	}
}

func TestMessageBrokenMidwayIsDeadLetteredWhole(t *testing.T) {
	l := streamtest.New(t)
	r := start(t, l, testOptions(t))
	data := event.AppendRecord(nil, "web", ev("first", "u1"))
	data = append(data, 0, 0, 0, 99, 3, 'w') // a record header promising more than there is
	h := nats.Header{}
	h.Set(stream.HeaderFormat, stream.FormatRecords)
	h.Set(stream.HeaderCount, "2")
	if _, err := l.JetStream().PublishMsg(t.Context(), &nats.Msg{Subject: stream.IngestSubject, Header: h, Data: data}); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, l, ev("after", "u2"))
	r.waitFor(t, l)
	if got := processedIDs(t, l); len(got) != 1 || got[0] != "after" {
		t.Fatalf("processed %v, want only the event after the broken message", got)
	}
	dead := streamtest.StreamRecordsRaw(t, l, stream.DLQStream)
	if len(dead) != 1 || !bytes.Equal(dead[0].Data, data) || !strings.HasPrefix(dead[0].Header.Get(HeaderReason), "malformed_message") {
		t.Fatalf("dead letters %v, want the whole broken message", dead)
	}
	if n := r.count("", OutcomeInvalid); n != 2 {
		t.Errorf("invalid counted %d, want the 2 records the message announced", n)
	}
}
