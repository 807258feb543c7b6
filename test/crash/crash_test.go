// Package crash_test proves the promises that kill -9 tests: an event that
// got a 200 survives a crash of the server at any moment, exactly as
// accepted, and the processing stage, killed in the middle of its work,
// writes every such event to processed exactly once.
package crash_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server/servertest"
	"github.com/confluxcdp/conflux/internal/stream"
)

const writeKey = "crash-test-write-key"

// buildBinary builds cmd/conflux into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "conflux")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/conflux")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building conflux: %v\n%s", err, b)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is one run of the server binary.
type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func start(t *testing.T, bin, dataDir, cfg, addr string) *proc {
	t.Helper()
	p := &proc{stderr: &bytes.Buffer{}}
	p.cmd = exec.Command(bin, "serve", "--data", dataDir, "--config", cfg, "--addr", addr, "--min-free-disk-mb", "-1")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	t.Fatalf("server not ready within 30s; stderr:\n%s", p.stderr)
	return nil
}

// killUnderLoad runs the server cycles times: each run is loaded (see
// load) for d, then killed with SIGKILL. It returns each run's stderr.
func killUnderLoad(t *testing.T, bin, dataDir, cfg, run string, cycles int, d time.Duration, a *acked) []string {
	t.Helper()
	var out []string
	for cycle := range cycles {
		addr := freeAddr(t)
		p := start(t, bin, dataDir, cfg, addr)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { load(ctx, addr, fmt.Sprintf("%s%d", run, cycle), a); close(done) }()
		time.Sleep(d)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		cancel()
		<-done
		out = append(out, p.stderr.String())
	}
	return out
}

// acked records, per messageId, the event a 200 acknowledged.
type acked struct {
	mu     sync.Mutex
	events map[string]map[string]any
}

func (a *acked) add(batch []map[string]any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range batch {
		a.events[e["messageId"].(string)] = e
	}
}

// load sends batches from several connections until ctx ends, recording
// each batch that got a 200. Errors (the server dying) are expected.
func load(ctx context.Context, addr, run string, a *acked) {
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				batch := make([]map[string]any, 50)
				for i := range batch {
					id := fmt.Sprintf("%s-w%d-b%d-e%d", run, w, n, i)
					batch[i] = map[string]any{
						"type": "track", "event": "Crash Test", "userId": fmt.Sprintf("user-%d", (w*1000+n)%97),
						"messageId": id, "properties": map[string]any{"run": run, "n": float64(n), "i": float64(i), "pad": strings.Repeat("x", 200)},
					}
				}
				body, _ := json.Marshal(map[string]any{"batch": batch})
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/batch", bytes.NewReader(body))
				req.SetBasicAuth(writeKey, "")
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					a.add(batch)
				}
			}
		})
	}
	wg.Wait()
}

func TestKill9LosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the server binary; skipped with -short")
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "conflux.yaml")
	if err := os.WriteFile(cfg, []byte("admin_token: crash-test-admin-token\nsources:\n  - id: crash\n    write_key: "+writeKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &acked{events: map[string]map[string]any{}}
	for cycle, stderr := range killUnderLoad(t, bin, dataDir, cfg, "c", 2, 1500*time.Millisecond, a) {
		t.Logf("cycle %d: killed under load; %d partitions repaired at its start", cycle, strings.Count(stderr, "recovered partition after a crash"))
	}
	t.Logf("%d events acknowledged before the last run", len(a.events))

	// A last run: the server comes back, takes more, and stops cleanly.
	addr := freeAddr(t)
	p := start(t, bin, dataDir, cfg, addr)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	load(ctx, addr, "final", a)
	cancel()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.stderr)
	}
	t.Logf("final run: %d partitions repaired at its start", strings.Count(p.stderr.String(), "recovered partition after a crash"))
	if len(a.events) < 1000 {
		t.Fatalf("only %d events acknowledged: the load did not run", len(a.events))
	}

	stored := map[string]map[string]any{}
	dups := 0
	for _, r := range servertest.ReadIngest(t, dataDir) {
		var e map[string]any
		if err := json.Unmarshal(r.JSON, &e); err != nil {
			t.Fatalf("corrupt record %q: %v", r.JSON, err)
		}
		id := e["messageId"].(string)
		if _, seen := stored[id]; seen {
			dups++
		}
		stored[id] = e
		if r.SourceID != "crash" {
			t.Fatalf("record of source %q", r.SourceID)
		}
	}
	lost := 0
	for id, sent := range a.events {
		got, ok := stored[id]
		if !ok {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged event %s is not in the log", id)
			}
			continue
		}
		for _, k := range []string{"type", "event", "userId"} {
			if got[k] != sent[k] {
				t.Errorf("event %s: %s = %v, sent %v", id, k, got[k], sent[k])
			}
		}
		gp, _ := json.Marshal(got["properties"])
		sp, _ := json.Marshal(sent["properties"])
		if !bytes.Equal(gp, sp) {
			t.Errorf("event %s: properties %s, sent %s", id, gp, sp)
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged events lost", lost, len(a.events))
	}
	t.Logf("%d acknowledged events, all in the log; %d records in the log (%d not acknowledged, %d duplicate ids)",
		len(a.events), len(stored), len(stored)-len(a.events), dups)
	if dups > 0 {
		t.Errorf("%d message ids stored twice: no request was retried, so none should be", dups)
	}
	checkProcessedOnce(t, bin, dataDir, cfg, stored)
}

// checkProcessedOnce runs the server once more, without load, until the
// processing stage has caught up with ingest, and checks that processed
// holds every event of ingest exactly once — although the stage was
// killed twice in the middle of its groups.
func checkProcessedOnce(t *testing.T, bin, dataDir, cfg string, stored map[string]map[string]any) {
	t.Helper()
	last := ingestLastSeq(t, dataDir)
	addr := freeAddr(t)
	p := start(t, bin, dataDir, cfg, addr)
	deadline := time.Now().Add(60 * time.Second)
	for metric(t, addr, "conflux_process_position") < float64(last) {
		if time.Now().After(deadline) {
			t.Fatalf("processing at %v after 60s, ingest ends at %d", metric(t, addr, "conflux_process_position"), last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.stderr)
	}
	seen := map[string]int{}
	for _, r := range servertest.ReadStream(t, dataDir, stream.ProcessedStream) {
		var e map[string]any
		if err := json.Unmarshal(r.JSON, &e); err != nil {
			t.Fatalf("corrupt processed record %q: %v", r.JSON, err)
		}
		seen[e["messageId"].(string)]++
	}
	missing, twice := 0, 0
	for id := range stored {
		switch seen[id] {
		case 1:
		case 0:
			missing++
			if missing <= 5 {
				t.Errorf("event %s is in ingest but not in processed", id)
			}
		default:
			twice++
			if twice <= 5 {
				t.Errorf("event %s is in processed %d times", id, seen[id])
			}
		}
	}
	if len(seen) != len(stored) {
		t.Errorf("processed holds %d distinct events, ingest %d", len(seen), len(stored))
	}
	if missing > 0 || twice > 0 {
		t.Fatalf("processed: %d events missing, %d written more than once", missing, twice)
	}
	t.Logf("processed holds each of the %d events exactly once", len(stored))
}

// ingestLastSeq opens the stopped server's log and returns the last
// sequence of ingest.
func ingestLastSeq(t *testing.T, dataDir string) uint64 {
	t.Helper()
	l, err := stream.Open(t.Context(), stream.Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	last, err := l.LastSeq(t.Context(), stream.IngestStream)
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// metric reads one sample from the server's /metrics; -1 when it has none.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	if v, ok := servertest.Metric(t, "http://"+addr, name); ok {
		return v
	}
	return -1
}
