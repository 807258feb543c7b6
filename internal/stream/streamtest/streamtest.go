// Package streamtest starts Conflux's log for tests: the embedded NATS
// JetStream server with its file store in a test's temporary directory.
package streamtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// New opens an embedded log in t.TempDir() and closes it when the test ends.
func New(t testing.TB) *stream.Log {
	t.Helper()
	return Open(t, stream.Options{DataDir: t.TempDir()})
}

// Open opens a log with opts and closes it when the test ends.
func Open(t testing.TB, opts stream.Options) *stream.Log {
	t.Helper()
	l, err := stream.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("opening log: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// Records returns every record of the log's ingest stream, in order, with
// JSON copied out of the messages.
func Records(t testing.TB, l *stream.Log) []event.Record {
	t.Helper()
	return StreamRecords(t, l, stream.IngestStream)
}

// StreamRecords returns every record of one stream of the log, in order,
// with JSON copied out of the messages.
func StreamRecords(t testing.TB, l *stream.Log, name string) []event.Record {
	t.Helper()
	var out []event.Record
	for _, m := range StreamRecordsRaw(t, l, name) {
		if got := m.Header.Get(stream.HeaderFormat); got != stream.FormatRecords {
			t.Fatalf("message %d of %s has format %q, want %q", m.Seq, name, got, stream.FormatRecords)
		}
		for r, err := range event.Records(m.Data) {
			if err != nil {
				t.Fatalf("message %d of %s: %v", m.Seq, name, err)
			}
			out = append(out, event.Record{SourceID: r.SourceID, JSON: append([]byte(nil), r.JSON...)})
		}
	}
	return out
}

// StreamRecordsRaw returns every message of one stream of the log, in
// order, whatever its format.
func StreamRecordsRaw(t testing.TB, l *stream.Log, name string) []stream.Msg {
	t.Helper()
	ctx := context.Background()
	s, err := l.JetStream().Stream(ctx, name)
	if err != nil {
		t.Fatalf("opening stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("reading stream %s: %v", name, err)
	}
	var out []stream.Msg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("reading message %d of %s: %v", seq, name, err)
		}
		out = append(out, stream.Msg{Seq: m.Sequence, Header: m.Header, Data: m.Data})
	}
	return out
}

// NATSURLEnv names the environment variable holding the external NATS
// server tests use; DefaultNATSURL is the machine's.
const (
	NATSURLEnv     = "CONFLUX_TEST_NATS_URL"
	DefaultNATSURL = "nats://127.0.0.1:4222"
)

// External returns the URL of the external NATS server (with JetStream)
// that tests of --nats-url use, skipping the test when it is unreachable
// (failing under CONFLUX_REQUIRE_SERVICES=1). Conflux's streams on it are
// deleted before and after the test, so each test starts from an empty log.
func External(t testing.TB) string {
	t.Helper()
	url := testenv.Getenv(NATSURLEnv, DefaultNATSURL)
	nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
	if err == nil {
		var js jetstream.JetStream
		if js, err = jetstream.New(nc); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
		}
		if err != nil {
			nc.Close()
		}
	}
	if err != nil {
		testenv.Unavailable(t, "NATS with JetStream at "+url+" is unreachable (set "+NATSURLEnv+" to use another server): "+err.Error())
	}
	js, _ := jetstream.New(nc)
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The streams, and the buckets of package lease (its KV streams),
		// so that no lease of an earlier run holds a test's work back.
		for _, name := range []string{stream.IngestStream, stream.ProcessedStream, stream.DLQStream, "KV_conflux_leases", "KV_conflux_nodes"} {
			if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("deleting stream %s on %s: %v", name, url, err)
			}
		}
	}
	drop()
	t.Cleanup(func() { drop(); nc.Close() })
	return url
}
