package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
)

// TestTwoNodes runs two Conflux nodes on one NATS and one PostgreSQL,
// sending to both APIs: the processing partitions and the destination
// spread over them by lease, every event reaches the webhook once, an
// event re-sent to the other node is a duplicate, and when one node
// stops, the other takes its work over with dedup intact.
func TestTwoNodes(t *testing.T) {
	natsURL := streamtest.External(t)
	pgURL := storetest.PostgresSchema(t)
	rcv, hook := newReceiver(t, nil)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
sources:
  - id: web
    write_key: webWriteKey000000000000000000001
destinations:
  - id: hook
    type: webhook
    sources: [web]
    settings: {url: %q}
`, hook.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	node := func(id string) *servertest.Server {
		return servertest.Start(t, server.Options{DataDir: filepath.Join(dir, id), ConfigPath: cfg, NATSURL: natsURL,
			PostgresURL: pgURL, NodeID: id, NoArchive: true})
	}
	a, b := node("n1"), node("n2")
	key := "webWriteKey000000000000000000001"
	// Until the partitions are spread, a node may own them all: send
	// until both have processed some (never lost meanwhile).
	processed := func(s *servertest.Server) float64 {
		v, _ := s.Metric(t, `conflux_process_events_total{outcome="processed",source="web"}`)
		return v
	}
	n := 0
	for deadline := time.Now().Add(30 * time.Second); n < 100 || processed(a) == 0 || processed(b) == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d events, processed %v by n1 and %v by n2", n, processed(a), processed(b))
		}
		s := a
		if n%2 == 1 {
			s = b
		}
		if st := send(t, s.URL, key, "/v1/track", fmt.Sprintf(`{"messageId":"m%d","userId":"u%d","event":"E"}`, n, n%17)); st != 200 {
			t.Fatalf("track to %s: %d", s.URL, st)
		}
		if n >= 100 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	rcv.wait(t, n)
	// Re-sent to the other node: duplicates.
	for i := range 20 {
		s := b
		if i%2 == 1 {
			s = a
		}
		if st := send(t, s.URL, key, "/v1/track", fmt.Sprintf(`{"messageId":"m%d","userId":"u%d","event":"E"}`, i, i%17)); st != 200 {
			t.Fatal(st)
		}
	}
	// Any node tells who does what.
	var src map[string]any
	st, cl := admin(t, b, "GET", "/api/v1/cluster", "")
	leases, _ := cl["leases"].(map[string]any)
	holders := map[any]int{}
	for _, n := range leases {
		holders[n]++
	}
	if st != 200 || cl["node"] != "n2" || fmt.Sprint(cl["nodes"]) != "[n1 n2]" || len(leases) != 18 || holders["n1"] == 0 || holders["n2"] == 0 {
		t.Errorf("cluster: %d %v", st, cl)
	}
	// A source created on one node takes events on the other within a
	// second.
	st, src = admin(t, a, "POST", "/api/v1/sources", `{"id":"app"}`)
	if st != 201 {
		t.Fatalf("create source: %d %v", st, src)
	}
	created := time.Now()
	for send(t, b.URL, src["write_key"].(string), "/v1/track", `{"messageId":"app-1","userId":"u","event":"E"}`) != 200 {
		if time.Since(created) > time.Second {
			t.Fatal("a source created on n1 is unknown to n2 after a second")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// b leaves; a takes its partitions and, if it had it, the destination.
	b.Stop(t)
	for i := range 20 { // events the two nodes processed before, again
		if st := send(t, a.URL, key, "/v1/track", fmt.Sprintf(`{"messageId":"m%d","userId":"u%d","event":"E"}`, n-1-i, (n-1-i)%17)); st != 200 {
			t.Fatal(st)
		}
	}
	if st := send(t, a.URL, key, "/v1/track", `{"messageId":"after","userId":"u1","event":"E"}`); st != 200 {
		t.Fatal(st)
	}
	rcv.wait(t, n+1)
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive now
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for id, n := range rcv.got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}
