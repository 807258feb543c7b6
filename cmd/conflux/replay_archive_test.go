package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
)

// TestReplayFromArchive: events sent before a destination existed (so its
// queue, which starts at the end of the log, never reads them) reach it
// through `conflux replay --archive --from --to`, each once, and only
// those of the time range.
func TestReplayFromArchive(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			MessageID string `json:"messageId"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		got[ev.MessageID]++
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	write := func(dests string) string {
		cfg := filepath.Join(dir, "conflux.yaml")
		if err := os.WriteFile(cfg, []byte("sources:\n  - id: web\n    write_key: webWriteKey000000000000000000001\n"+dests), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	data := filepath.Join(dir, "data")
	s := servertest.Start(t, server.Options{DataDir: data, ConfigPath: write(""), NoProfiles: true})
	send := func(id string) {
		req, _ := http.NewRequest("POST", s.URL+"/v1/track", strings.NewReader(fmt.Sprintf(`{"messageId":%q,"userId":"u","event":"Old"}`, id)))
		req.SetBasicAuth("webWriteKey000000000000000000001", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("track: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	for i := range 20 {
		send(fmt.Sprintf("old-%02d", i))
	}
	s.WaitMetric(t, `conflux_process_events_total{outcome="processed",source="web"}`, 20)
	s.Stop(t) // flushes the archive

	s = servertest.Start(t, server.Options{DataDir: data, NoProfiles: true, ConfigPath: write(fmt.Sprintf(
		"destinations:\n  - id: hook\n    type: webhook\n    sources: [web]\n    settings: {url: %q}\n", hook.URL))})
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := replay(ctx, []string{"-addr", s.URL, "-token", s.AdminToken, "-archive", "-destination", "hook", "-from", from, "-to", to}, &out, &errOut); err != nil {
		t.Fatalf("replay: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "20 delivered") {
		t.Errorf("replay said %q", out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 20 {
		t.Errorf("the destination got %d distinct events, want 20: %v", len(got), got)
	}
	for id, n := range got {
		if n != 1 || !strings.HasPrefix(id, "old-") {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	// A range before the events: nothing.
	out.Reset()
	if err := replay(ctx, []string{"-addr", s.URL, "-token", s.AdminToken, "-archive", "-destination", "hook",
		"-from", time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339), "-to", time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), ": 0 archived events") {
		t.Errorf("an empty range: %q", out.String())
	}
}
