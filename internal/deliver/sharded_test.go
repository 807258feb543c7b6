package deliver_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
)

// shardedHook is one webhook destination whose receiver fails the first
// attempt of every tenth event, counts each event's deliveries and which
// node sent them, and keeps the most requests it had at once.
type shardedHook struct {
	log *stream.Log
	db  *store.DB
	ws  atomic.Pointer[config.Workspace]
	// late is the workspace as a node that polls late sees it: a change
	// reaches it 500 ms after ws.
	late atomic.Pointer[config.Workspace]
	url  string

	mu       sync.Mutex
	got      map[string]int // messageId → deliveries
	failed   map[string]bool
	byNode   map[string]int
	now, top int
}

// newShardedHook starts the receiver; the destination has shards shards,
// seen by both views at once.
func newShardedHook(t *testing.T, shards int) *shardedHook {
	h := &shardedHook{log: streamtest.New(t), db: storetest.SQLite(t), got: map[string]int{}, failed: map[string]bool{}, byNode: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			MessageID string `json:"messageId"`
			N         int    `json:"properties_n"`
		}
		_ = json.Unmarshal(body, &ev)
		h.mu.Lock()
		h.now++
		h.top = max(h.top, h.now)
		fail := ev.N%10 == 0 && !h.failed[ev.MessageID]
		h.failed[ev.MessageID] = true
		h.mu.Unlock()
		time.Sleep(2 * time.Millisecond) // long enough for requests to overlap
		h.mu.Lock()
		h.now--
		if !fail {
			h.got[ev.MessageID]++
			h.byNode[r.Header.Get("X-Node")]++
		}
		h.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	ws := h.workspace(1, shards, true)
	h.ws.Store(ws)
	h.late.Store(ws)
	return h
}

// setShards publishes a workspace of the given version in which the
// destination has n shards and a concurrency of 4.
func (h *shardedHook) setShards(version int64, n int) { h.set(version, n, true) }

// set publishes a workspace of the given version in which the destination,
// changed now, has n shards, a concurrency of 4, and is enabled or not.
func (h *shardedHook) set(version int64, n int, enabled bool) {
	ws := h.workspace(version, n, enabled)
	h.ws.Store(ws)
	time.AfterFunc(500*time.Millisecond, func() {
		// Never back to an older version, whatever order timers fire in.
		for {
			cur := h.late.Load()
			if cur.Version >= ws.Version || h.late.CompareAndSwap(cur, ws) {
				return
			}
		}
	})
}

func (h *shardedHook) workspace(version int64, n int, enabled bool) *config.Workspace {
	d := config.Destination{ID: "hook", Type: "webhook", Enabled: enabled, Sources: []string{"web"},
		Settings: map[string]any{"url": h.url, "timeout": "2s"},
		Delivery: config.DeliveryOptions{Concurrency: 4, Shards: n}, UpdatedAt: time.Now()}
	return config.NewWorkspace(version, config.Settings{}, []config.Source{{ID: "web", WriteKey: "k"}}, []config.Destination{d})
}

// positions returns the stored position keys, sorted.
func (h *shardedHook) positions(t *testing.T) []string {
	t.Helper()
	var keys []string
	rows, err := h.db.SQL().Query(`SELECT destination_id FROM delivery_positions ORDER BY destination_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		keys = append(keys, k)
	}
	return keys
}

func (h *shardedHook) publish(t *testing.T, from, to int) {
	t.Helper()
	var data []byte
	at := time.Now().UTC().Format(time.RFC3339Nano)
	for i := from; i < to; i++ {
		data = event.AppendRecord(data, "web", fmt.Appendf(nil,
			`{"type":"track","event":"E","messageId":"m%d","properties_n":%d,"userId":"u","context":{},"timestamp":%q,"receivedAt":%q}`, i, i, at, at))
	}
	if _, err := h.log.JetStream().Publish(context.Background(), stream.ProcessedSubject, data); err != nil {
		t.Fatal(err)
	}
}

func (h *shardedHook) waitAll(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		h.mu.Lock()
		have := len(h.got)
		h.mu.Unlock()
		if have == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered", have, n)
		}
	}
}

// nodeHeader marks each request with the node that sent it.
type nodeHeader struct {
	node string
	next http.RoundTripper
}

func (n nodeHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Node", n.node)
	return n.next.RoundTrip(r)
}

// TestShardedDestination runs two nodes' engines for one destination of
// four shards: both nodes deliver for it, every event arrives once (the
// tenth that fail once included, retried by their shard), and no more
// than its concurrency of requests are open at once. The shard count
// then changes under traffic, 4 → 2 → 3, seen by one node half a second
// after the other, and a node leaves: still every event once, and the old
// counts' positions are gone once passed.
func TestShardedDestination(t *testing.T) {
	h := newShardedHook(t, 4)
	start := func(id string, view func() *config.Workspace) *leasedNode {
		return startLeased(t, h.log, id, deliver.Options{DB: h.db, Workspace: view,
			HTTP:     &http.Client{Transport: nodeHeader{id, http.DefaultTransport}},
			Registry: deliver.NewRegistry(webhook.Type), ConfigPoll: 20 * time.Millisecond,
			RetryPoll: 50 * time.Millisecond, Backoff: deliver.Backoff{Min: 100 * time.Millisecond, Max: time.Second}})
	}
	// b sees every change late: a's new shards must wait for b's old ones.
	a, b := start("a", h.ws.Load), start("b", h.late.Load)
	defer a.stop()
	// waitOwned waits until the n shards are owned, by both nodes when
	// both is set (rendezvous hashing may give a few to one node).
	waitOwned := func(n int, both bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			owned := map[string]int{}
			for k := range n {
				name := fmt.Sprintf("deliver/hook/%d-of-%d", k, n)
				for _, nd := range []*leasedNode{a, b} {
					if nd.group.Owns(name) {
						owned[nd.group.Node()]++
					}
				}
			}
			if owned["a"]+owned["b"] == n && (!both || owned["a"] > 0 && owned["b"] > 0) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("shards of %d owned %v", n, owned)
			}
		}
	}
	waitOwned(4, true)
	sent := 0
	send := func(batches int) {
		for range batches {
			h.publish(t, sent, sent+25)
			sent += 25
		}
	}
	send(12)
	h.waitAll(t, sent)
	h.mu.Lock()
	byNode := map[string]int{"a": h.byNode["a"], "b": h.byNode["b"]}
	h.mu.Unlock()
	if byNode["a"] == 0 || byNode["b"] == 0 {
		t.Errorf("deliveries by node %v: want both nodes delivering for the destination", byNode)
	}

	// Shard counts change while events arrive.
	for i, n := range []int{2, 3} {
		send(4)
		h.setShards(int64(2+i), n)
		send(8)
		waitOwned(n, false)
		send(4)
		h.waitAll(t, sent)
	}

	// b leaves; a takes its shards over.
	b.stop()
	send(8)
	h.waitAll(t, sent)
	for k := range 3 {
		if name := fmt.Sprintf("deliver/hook/%d-of-3", k); !a.group.Owns(name) {
			t.Errorf("a does not own %s after b left", name)
		}
	}

	time.Sleep(300 * time.Millisecond) // for a repeat to arrive
	h.mu.Lock()
	for id, n := range h.got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if h.top > 4 {
		t.Errorf("%d requests at once, want at most the destination's concurrency 4", h.top)
	}
	h.mu.Unlock()

	// Only the current count's positions are left.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		keys := h.positions(t)
		if fmt.Sprint(keys) == "[hook/0-of-3 hook/1-of-3 hook/2-of-3]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("positions %v, want those of the three shards only", keys)
		}
	}
}

// TestReenabledDestination disables a destination of two shards on two
// nodes, one of which sees every change half a second late, and enables
// it again: what arrived while it was disabled is not sent, what arrives
// after is sent once, and the late node does not delete the positions
// the new queues stored (the reset is the config change's, done once).
func TestReenabledDestination(t *testing.T) {
	h := newShardedHook(t, 2)
	start := func(id string, view func() *config.Workspace) *leasedNode {
		return startLeased(t, h.log, id, deliver.Options{DB: h.db, Workspace: view,
			Registry: deliver.NewRegistry(webhook.Type), ConfigPoll: 20 * time.Millisecond,
			RetryPoll: 50 * time.Millisecond, Backoff: deliver.Backoff{Min: 100 * time.Millisecond, Max: time.Second}})
	}
	a, b := start("a", h.ws.Load), start("b", h.late.Load)
	defer a.stop()
	defer b.stop()
	h.publish(t, 0, 50)
	h.waitAll(t, 50)

	// held waits until the shards' leases are held (or none is): a lease
	// is released only after its queue stopped and stored its position.
	held := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			n := 0
			for k := range 2 {
				for _, nd := range []*leasedNode{a, b} {
					if nd.group.Holds(fmt.Sprintf("deliver/hook/%d-of-2", k)) {
						n++
					}
				}
			}
			if want && n == 2 || !want && n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d shard leases held, want %v", n, want)
			}
		}
	}
	h.set(2, 2, false)
	held(false)           // both nodes have stopped the queues
	h.publish(t, 50, 100) // while disabled: never sent
	time.Sleep(200 * time.Millisecond)
	// What the config repository does in the transaction that enables
	// the destination again; the engines themselves reset nothing.
	if err := h.db.InTx(t.Context(), func(tx *sql.Tx) error { return h.db.ForgetDelivery(t.Context(), tx, "hook", true) }); err != nil {
		t.Fatal(err)
	}
	h.set(3, 2, true)
	held(true)
	for deadline := time.Now().Add(5 * time.Second); !h.late.Load().Destinations[0].Enabled; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the late node never saw the destination enabled")
		}
	}
	time.Sleep(200 * time.Millisecond) // the late node has reconciled
	if keys := h.positions(t); fmt.Sprint(keys) != "[hook/0-of-2 hook/1-of-2]" {
		t.Errorf("positions once both nodes saw the re-enable: %v, want both shards'", keys)
	}
	h.publish(t, 100, 150)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		h.mu.Lock()
		n := h.got["m149"] + h.got["m100"]
		h.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the events after the re-enable were not delivered")
		}
	}
	h.waitAll(t, 100)
	time.Sleep(300 * time.Millisecond)
	h.mu.Lock()
	for id, n := range h.got {
		var i int
		fmt.Sscanf(id, "m%d", &i)
		if i >= 50 && i < 100 {
			t.Errorf("%s, published while the destination was disabled, was delivered", id)
		}
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	h.mu.Unlock()

	// Deleted: once its queues have stopped, none of its state is left
	// (the store has no destination of that id).
	gone := config.NewWorkspace(4, config.Settings{}, []config.Source{{ID: "web", WriteKey: "k"}}, nil)
	h.ws.Store(gone)
	h.late.Store(gone)
	held(false)
	for deadline := time.Now().Add(5 * time.Second); len(h.positions(t)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("positions of a deleted destination: %v", h.positions(t))
		}
	}
}
