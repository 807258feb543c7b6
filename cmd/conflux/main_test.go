package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("sources:\n  - id: web\n"), 0o600)
	os.WriteFile(bad, []byte("sources:\n  - id: Web Site\n    colour: blue\n"), 0o600)
	badDest := filepath.Join(dir, "bad-destination.yaml")
	os.WriteFile(badDest, []byte("sources:\n  - id: web\ndestinations:\n  - id: hook\n    type: webhook\n    sources: [web]\n    settings: {url: \"ftp://x\"}\n  - id: other\n    type: carrier-pigeon\n    sources: [web]\n"), 0o600)
	fn := filepath.Join(dir, "functions.yaml")
	os.WriteFile(fn, []byte("sources:\n  - id: web\ndestinations:\n  - id: crm\n    type: function\n    sources: [web]\n    code: |\n      async function onTrack(event) {}\n"), 0o600)
	badFn := filepath.Join(dir, "bad-function.yaml")
	os.WriteFile(badFn, []byte("sources:\n  - id: web\ndestinations:\n  - id: crm\n    type: function\n    sources: [web]\n    code: |\n      async function onTrack(event) {\n"), 0o600)
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"check", "-c", good}, 0, "OK (1 sources, 0 destinations)"},
		{[]string{"check", "-c", fn}, 0, "OK (1 sources, 1 destinations)"},
		{[]string{"check", "-c", badFn}, 1, "bad-function.yaml:9:7: destinations[0].code"},
		{[]string{"check", "-config", bad}, 1, "bad.yaml:2:"},
		{[]string{"check", "-c", bad}, 1, "colour"},
		{[]string{"check", "-c", filepath.Join(dir, "missing.yaml")}, 1, "missing.yaml"},
		{[]string{"check", "-c", badDest}, 1, "destinations[0].settings"},
		{[]string{"check", "-c", badDest}, 1, `unknown destination type "carrier-pigeon"`},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"serve", "--fsync", "sometimes"}, 1, "fsync mode"},
		{[]string{"serve", "--no-such-flag"}, 2, "no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), tt.args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tt.code || !strings.Contains(all, tt.contains) {
				t.Fatalf("exit %d, output %q; want exit %d and %q", code, all, tt.code, tt.contains)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the tail goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestTail(t *testing.T) {
	s := servertest.Start(t, server.Options{})
	post := func(body string) {
		req, _ := http.NewRequest("POST", s.URL+"/v1/track", strings.NewReader(body))
		req.SetBasicAuth(s.WriteKey, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("track: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	post(`{"userId":"u1","event":"Before Tail"}`)

	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"tail", "-source", s.SourceID, "-addr", s.URL, "-token", s.AdminToken}, &out, &out)
	}()
	waitFor := func(what string) {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("tail output lacks %q:\n%s", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(`"Before Tail"`)
	post(`{"userId":"u2","event":"After Tail"}`)
	waitFor(`"After Tail"`)
	if !strings.Contains(out.String(), "userId=u2") {
		t.Errorf("summary lacks the user: %s", out.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("tail exit %d", code)
	}

	var errOut bytes.Buffer
	if code := run(t.Context(), []string{"tail", "-source", s.SourceID, "-addr", s.URL, "-token", "wrong"}, &errOut, &errOut); code != 1 || !strings.Contains(errOut.String(), "401") {
		t.Errorf("wrong token: exit %d %q", code, errOut.String())
	}
}
