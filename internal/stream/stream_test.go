package stream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The NATS client keeps a process-wide timer goroutine alive.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).flusher"),
		goleak.IgnoreTopFunction("time.Sleep"),
	)
}

func TestGroupCommitKeepsEveryAppend(t *testing.T) {
	l := streamtest.New(t)
	a := stream.NewAppender(l.JetStream(), stream.AppenderOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	const writers, each = 16, 50
	var ww sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		ww.Go(func() {
			for i := range each {
				rec := event.AppendRecord(nil, fmt.Sprintf("s%d", w), fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i))
				if err := a.Append(t.Context(), rec, 1); err != nil {
					errs <- err
				}
			}
		})
	}
	ww.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	recs := streamtest.Records(t, l)
	if len(recs) != writers*each {
		t.Fatalf("log holds %d records, want %d", len(recs), writers*each)
	}
	// Each writer's records are in its own order.
	next := map[string]int{}
	for _, r := range recs {
		want := fmt.Sprintf(`{"w":%s,"i":%d}`, r.SourceID[1:], next[r.SourceID])
		if string(r.JSON) != want {
			t.Fatalf("record %s, want %s", r.JSON, want)
		}
		next[r.SourceID]++
	}
	s, _ := l.JetStream().Stream(t.Context(), stream.IngestStream)
	info, _ := s.Info(t.Context())
	if info.State.Msgs >= uint64(writers*each) {
		t.Errorf("%d messages for %d appends: group commit did not group", info.State.Msgs, writers*each)
	}
}

func TestAppendFailsWhenLogIsGone(t *testing.T) {
	l, err := stream.Open(t.Context(), stream.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := stream.NewAppender(l.JetStream(), stream.AppenderOptions{AckTimeout: time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	if err := a.Append(t.Context(), event.AppendRecord(nil, "s", []byte(`{}`)), 1); err != nil {
		t.Fatalf("append before close: %v", err)
	}
	_ = l.Close()
	if err := a.Append(t.Context(), event.AppendRecord(nil, "s", []byte(`{}`)), 1); err == nil {
		t.Fatal("append after the log closed succeeded")
	}
}

func TestAppendFailsWhenStreamIsFull(t *testing.T) {
	l := streamtest.Open(t, stream.Options{DataDir: t.TempDir(), MaxIngestBytes: 64 << 10})
	a := stream.NewAppender(l.JetStream(), stream.AppenderOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	rec := event.AppendRecord(nil, "s", make([]byte, 16<<10))
	var err error
	for range 10 {
		if err = a.Append(t.Context(), rec, 1); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("160 KiB appended to a 64 KiB stream")
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		t.Logf("error (not an APIError): %v", err)
	}
}

func TestAppendAfterStopFails(t *testing.T) {
	l := streamtest.New(t)
	a := stream.NewAppender(l.JetStream(), stream.AppenderOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = a.Run(ctx)
	if err := a.Append(t.Context(), []byte("x"), 1); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestReopenKeepsRecords(t *testing.T) {
	dir := t.TempDir()
	l, err := stream.Open(t.Context(), stream.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a := stream.NewAppender(l.JetStream(), stream.AppenderOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	if err := a.Append(t.Context(), event.AppendRecord(nil, "s", []byte(`{"kept":true}`)), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	_ = l.Close()

	l2 := streamtest.Open(t, stream.Options{DataDir: dir})
	recs := streamtest.Records(t, l2)
	if len(recs) != 1 || string(recs[0].JSON) != `{"kept":true}` {
		t.Fatalf("after reopen: %v", recs)
	}
}
