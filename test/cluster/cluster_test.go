// Package cluster_test runs Conflux as a cluster on this machine: three
// NATS servers clustered with JetStream (streams R3), three Conflux
// processes sharing them and the local PostgreSQL, under load across the
// three APIs, with one Conflux process and one NATS server killed with
// SIGKILL and restarted.
package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	writeKey   = "cluster-test-write-key-000000001"
	adminToken = "cluster-test-admin-token-0000001"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func buildBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "conflux")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/conflux")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building conflux: %v\n%s", err, b)
	}
	return bin
}

// proc is a process the test runs, restartable with the same arguments.
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.out = &bytes.Buffer{}
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func (p *proc) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.kill()
		}
	}
}

// natsCluster starts three clustered JetStream servers and returns them
// and the client URL list.
func natsCluster(t *testing.T) ([]*proc, string) {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr == nil {
			bin = "/usr/sbin/nats-server"
		} else {
			testenv.Unavailable(t, "the nats-server binary is not installed (Debian's nats-server package): "+err.Error())
		}
	}
	dir := t.TempDir()
	clientPorts := []int{freePort(t), freePort(t), freePort(t)}
	routePorts := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var servers []*proc
	var urls []string
	for i := range 3 {
		conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		body := fmt.Sprintf(`server_name: nats-%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster { name: conflux-test, listen: 127.0.0.1:%d, routes: [%s] }
`, i, clientPorts[i], filepath.Join(dir, fmt.Sprintf("js%d", i)), routePorts[i], strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		p := &proc{name: fmt.Sprintf("nats-%d", i), args: []string{bin, "-c", conf}}
		p.start(t)
		t.Cleanup(p.kill)
		servers = append(servers, p)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	all := strings.Join(urls, ",")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if jetStreamReady(all) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the NATS cluster has no JetStream leader after 30s:\n%s", servers[0].out)
		}
	}
	return servers, all
}

func jetStreamReady(url string) bool {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err == nil
}

// receiver is the webhook: it counts each messageId it gets, keeps when
// its last delivery came, and the most requests it had open at once.
type receiver struct {
	mu        sync.Mutex
	got       map[string]int
	last      time.Time
	open, top int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.open++
	r.top = max(r.top, r.open)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.open--
		r.mu.Unlock()
	}()
	body, _ := io.ReadAll(req.Body)
	var evs []struct {
		MessageID string `json:"messageId"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		w.WriteHeader(400)
		return
	}
	time.Sleep(time.Millisecond) // long enough for requests to overlap
	r.mu.Lock()
	for _, e := range evs {
		r.got[e.MessageID]++
	}
	r.last = time.Now()
	r.mu.Unlock()
}

// maxOpen is the most requests the receiver had open at once.
func (r *receiver) maxOpen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.top
}

func (r *receiver) lastDelivery() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// confluxNodes is n Conflux processes on the NATS cluster natsURL and the
// PostgreSQL pg, whose source web goes to a webhook destination on rcv
// (batches of batch, concurrency 8, in shards queues); flags are added to
// every serve.
type confluxNodes struct {
	rcv   *receiver
	nodes []*proc
	addrs []string
}

func startConflux(t *testing.T, bin, natsURL, pg string, n, batch, shards int, flags ...string) *confluxNodes {
	t.Helper()
	c := &confluxNodes{rcv: &receiver{got: map[string]int{}}}
	hook := &http.Server{Handler: c.rcv}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hook.Serve(ln) }()
	t.Cleanup(func() { _ = hook.Close() })
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`admin_token: %s
sources:
  - id: web
    write_key: %s
destinations:
  - id: hook
    type: webhook
    sources: [web]
    settings: {url: "http://%s/hook", batch_size: %d}
    delivery: {concurrency: 8, shards: %d}
`, adminToken, writeKey, ln.Addr(), batch, shards)), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args := []string{bin, "serve", "--addr", addr, "--data", filepath.Join(dir, fmt.Sprintf("c%d", i)),
			"--config", cfg, "--nats-url", natsURL, "--nats-replicas", "3", "--postgres-url", pg, "--node-id", fmt.Sprintf("c%d", i),
			"--min-free-disk-mb", "-1", "--no-archive"}
		p := &proc{name: fmt.Sprintf("conflux-%d", i), args: append(args, flags...)}
		p.start(t)
		t.Cleanup(p.stop)
		c.nodes, c.addrs = append(c.nodes, p), append(c.addrs, addr)
	}
	for i, p := range c.nodes {
		waitReady(t, p, c.addrs[i])
	}
	return c
}

// delivered returns how many events a node delivered to the destination
// since it started, from its metrics.
func delivered(t *testing.T, addr string) float64 {
	t.Helper()
	v, _ := servertest.Metric(t, "http://"+addr, `conflux_deliver_events_total{destination="hook",outcome="delivered"}`)
	return v
}

func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

func (r *receiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func waitReady(t *testing.T, p *proc, addr string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !ready(addr); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60s:\n%s", p.name, p.out)
		}
	}
}

// post sends a batch to a node; true when it answered 200.
func post(client *http.Client, addr string, batch []map[string]any) bool {
	body, _ := json.Marshal(map[string]any{"batch": batch})
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/batch", bytes.NewReader(body))
	req.SetBasicAuth(writeKey, "")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func TestClusterSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NATS servers and three Conflux processes; skipped with -short")
	}
	pg := storetest.PostgresSchema(t)
	natsProcs, natsURL := natsCluster(t)
	bin := buildBinary(t)
	c := startConflux(t, bin, natsURL, pg, 3, 20, 3)
	rcv, nodes, addrs := c.rcv, c.nodes, c.addrs

	// Load: one sender per node, batches of 20 unique events.
	var mu sync.Mutex
	acked := map[string]int{} // messageId → node that acknowledged it
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for n := range 3 {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for b := 0; ctx.Err() == nil; b++ {
				batch := make([]map[string]any, 20)
				for i := range batch {
					batch[i] = map[string]any{"type": "track", "event": "Cluster", "messageId": fmt.Sprintf("n%d-b%d-e%d", n, b, i),
						"userId": fmt.Sprintf("user-%d", (b*20+i)%211), "properties": map[string]any{"b": b}}
				}
				if !post(client, addrs[n], batch) {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				for _, e := range batch {
					acked[e["messageId"].(string)] = n
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	time.Sleep(5 * time.Second)
	// The delivery rate just before the kill bounds what the killed node
	// can have sent and not stored.
	atKill := rcv.distinct()
	time.Sleep(time.Second)
	rate := float64(rcv.distinct() - atKill) // events per second
	t.Logf("killing conflux-2 and nats-2 (delivering %.0f events/s)", rate)
	nodes[2].kill()
	natsProcs[2].kill()
	time.Sleep(6 * time.Second)
	t.Log("restarting them")
	natsProcs[2].start(t)
	nodes[2].start(t)
	waitReady(t, nodes[2], addrs[2])
	time.Sleep(5 * time.Second)
	cancel()
	wg.Wait()

	mu.Lock()
	total := len(acked)
	mu.Unlock()
	t.Logf("%d events acknowledged", total)
	deadline := time.Now().Add(120 * time.Second)
	for rcv.distinct() < total && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	var missing []string
	for id := range acked {
		if rcv.count(id) == 0 {
			missing = append(missing, id)
		}
	}
	mu.Unlock()
	if len(missing) > 0 {
		for i, a := range addrs {
			resp, err := http.Get("http://" + a + "/metrics")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, line := range strings.Split(string(b), "\n") {
					if strings.HasPrefix(line, "conflux_process_events_total") || strings.HasPrefix(line, "conflux_process_position") ||
						strings.HasPrefix(line, "conflux_delivery_lag") || strings.HasPrefix(line, "conflux_deliver") && strings.Contains(line, "lag") {
						t.Logf("node %d: %s", i, line)
					}
				}
			}
			for _, line := range strings.Split(nodes[i].out.String(), "\n") {
				if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "processing partitions") || strings.Contains(line, "queue started") {
					t.Logf("node %d log: %.300s", i, line)
				}
			}
		}
		t.Fatalf("%d of %d acknowledged events never delivered, e.g. %v", len(missing), total, missing[:min(5, len(missing))])
	}
	rcv.mu.Lock()
	dups := 0
	for _, n := range rcv.got {
		dups += n - 1
	}
	rcv.mu.Unlock()
	// Several nodes delivered for the one destination (its three shards).
	var delivering []int
	for i, a := range addrs {
		if n := delivered(t, a); n > 0 {
			delivering = append(delivering, i)
		}
	}
	t.Logf("nodes that delivered for the destination: %v; most requests open at once: %d", delivering, rcv.maxOpen())
	if len(delivering) < 2 {
		t.Errorf("nodes %v delivered for the destination of three shards: want several", delivering)
	}
	// Its concurrency (8) holds across the nodes: the shards' shares add
	// up to it.
	if n := rcv.maxOpen(); n > 8 {
		t.Errorf("%d requests open at once at the receiver: more than the destination's concurrency 8", n)
	}
	// What a killed node had in flight (8 requests of 20) and delivered in
	// its last 250 ms (its positions are stored every 250 ms) may be sent
	// again; nothing else. The bound counts the whole destination's rate
	// for twice that window, and is never below 1,000 (a slow second
	// before the kill must not make it fail).
	bound := max(1000, 8*20+int(rate/2))
	t.Logf("repeats at the receiver: %d (bound %d)", dups, bound)
	if dups > bound {
		t.Errorf("%d repeats at the receiver: more than a killed node's in-flight window (%d)", dups, bound)
	}

	// Dedup across nodes after the hand-over: acknowledged events sent
	// again, each to another node than took it, are not delivered again.
	client := &http.Client{Timeout: 5 * time.Second}
	var again []map[string]any
	before := map[string]int{}
	mu.Lock()
	for id, n := range acked {
		if len(again) == 40 {
			break
		}
		parts := strings.Split(id, "-")
		var b, e int
		fmt.Sscanf(parts[1]+" "+parts[2], "b%d e%d", &b, &e)
		again = append(again, map[string]any{"type": "track", "event": "Cluster", "messageId": id, "userId": fmt.Sprintf("user-%d", (b*20+e)%211),
			"properties": map[string]any{"b": b}})
		before[id] = rcv.count(id)
		_ = n
	}
	mu.Unlock()
	for i := range 3 {
		if !post(client, addrs[i], again) {
			t.Fatalf("re-sending to node %d failed", i)
		}
	}
	if !post(client, addrs[0], []map[string]any{{"type": "track", "event": "Cluster", "messageId": "last", "userId": "user-1"}}) {
		t.Fatal("the last event was not accepted")
	}
	for deadline := time.Now().Add(30 * time.Second); rcv.count("last") == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the last event never arrived")
		}
	}
	time.Sleep(time.Second)
	for id, n := range before {
		if got := rcv.count(id); got != n {
			t.Errorf("%s re-sent to the three nodes was delivered again (%d → %d)", id, n, got)
		}
	}

	// One user's events through different nodes make one profile, read
	// from any node.
	for i, ev := range []map[string]any{
		{"type": "identify", "userId": "shared-user", "anonymousId": "anon-shared", "traits": map[string]any{"plan": "pro"}},
		{"type": "track", "anonymousId": "anon-shared", "event": "Viewed"},
		{"type": "track", "userId": "shared-user", "event": "Paid"},
	} {
		ev["messageId"] = fmt.Sprintf("profile-%d", i)
		if !post(client, addrs[i], []map[string]any{ev}) {
			t.Fatalf("profile event %d not accepted", i)
		}
	}
	profileID := func(addr, key string) string {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/profiles/"+key, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := client.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		var out struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out.ID
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		a, b := profileID(addrs[2], "user_id:shared-user"), profileID(addrs[1], "anonymous_id:anon-shared")
		if a != "" && a == b {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user's profile by user id %q and by anonymous id %q: want one", a, b)
		}
	}
	for _, p := range nodes {
		p.stop()
	}
}
