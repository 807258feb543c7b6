package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		settings map[string]any
		want     string
	}{
		{map[string]any{}, "url"},
		{map[string]any{"url": "postgres://x@127.0.0.1/db", "interval": "100ms"}, "interval"},
		{map[string]any{"url": "postgres://x@127.0.0.1/db", "batch": 3}, "batch"},
	} {
		d, err := Type.New(context.Background(), deliver.Config{ID: "w", Settings: tc.settings})
		if err == nil {
			_ = d.Close()
			t.Errorf("%v: accepted", tc.settings)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want it to name %s", tc.settings, err, tc.want)
		}
	}
}

// TestSendGroupsIntoOneLoad: batches that arrive within an interval are
// loaded together and all answered; an event with no row is discarded.
func TestSendGroupsIntoOneLoad(t *testing.T) {
	url := storetest.PostgresSchema(t)
	l, src := open(t) // for the cleanup of the source's schema
	_ = l
	d, err := Type.New(context.Background(), deliver.Config{ID: "w", Settings: map[string]any{"url": url, "interval": "1s"}, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ev := func(id, js string) *deliver.Event {
		return &deliver.Event{MessageID: id, SourceID: src, JSON: []byte(js)}
	}
	var wg sync.WaitGroup
	results := make([][]deliver.Result, 2)
	start := time.Now()
	for i, batch := range [][]*deliver.Event{
		{ev("m1", `{"type":"track","event":"A","messageId":"m1","userId":"u"}`), ev("m2", `{"type":"track","event":"!!","messageId":"m2","userId":"u"}`)},
		{ev("m3", `{"type":"page","messageId":"m3","anonymousId":"a","name":"Home"}`)},
	} {
		wg.Go(func() { results[i] = d.Send(context.Background(), batch) })
	}
	wg.Wait()
	if took := time.Since(start); took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("answered after %v; want about the 1s interval", took)
	}
	want := [][]deliver.Outcome{{deliver.Delivered, deliver.Discard}, {deliver.Delivered}}
	for i := range want {
		for j, o := range want[i] {
			if results[i][j].Outcome != o {
				t.Errorf("batch %d event %d: %v, want %v", i, j, results[i][j], o)
			}
		}
	}
	if n := query(t, l, `SELECT count(*)::text FROM `+ident(src)+`.tracks`); n != "1" {
		t.Errorf("%s tracks", n)
	}
}
