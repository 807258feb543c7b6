package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
)

// TestReplay dead-letters events at a webhook that refuses them, fixes
// the webhook, and replays them with the CLI.
func TestReplay(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	var mu sync.Mutex
	got := map[string]bool{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if refuse.Load() {
			http.Error(w, `{"error":"bad token"}`, http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got[string(body)] = true
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
sources:
  - id: web
    write_key: webWriteKey000000000000000000001
destinations:
  - id: hook
    type: webhook
    sources: [web]
    settings: {url: %q}
`, hook.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, server.Options{DataDir: filepath.Join(dir, "data"), ConfigPath: cfg})
	admin := func(path string) string {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
		}
	}
	eventually("the queue", func() bool { return strings.Contains(admin("/api/v1/destinations/hook/delivery"), `"running":true`) })
	for i := range 5 {
		req, _ := http.NewRequest("POST", s.URL+"/v1/track", strings.NewReader(fmt.Sprintf(`{"userId":"u","event":"E","messageId":"m%d"}`, i)))
		req.SetBasicAuth("webWriteKey000000000000000000001", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("track: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	eventually("5 dead letters", func() bool { return strings.Contains(admin("/api/v1/dead-letters?destination=hook"), `"total":5`) })

	refuse.Store(false)
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"replay", "-addr", s.URL, "-token", s.AdminToken, "-destination", "hook", "-page", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("replay exit %d: %s %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "5 events back in their queues") || !strings.Contains(out.String(), "5 delivered, 0 failed again") {
		t.Errorf("replay output:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "requeued [") || !strings.Contains(errOut.String(), "5/5 100%") {
		t.Errorf("no progress bar:\n%s", errOut.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 {
		t.Errorf("the webhook got %d events after the replay, want 5", len(got))
	}
	out.Reset()
	if code := run(t.Context(), []string{"replay", "-addr", s.URL, "-token", s.AdminToken}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "no dead letters match") {
		t.Errorf("second replay: exit %d %q", code, out.String())
	}
}
