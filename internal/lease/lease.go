// Package lease decides which node of a cluster does which piece of work:
// it keeps each node's membership and its leases in NATS KV buckets of the
// same JetStream the log uses (embedded or a cluster), so that there is no
// second coordination service to run.
//
// A node announces itself in the nodes bucket, renewed every third of the
// TTL; a node that stops renewing (killed, cut off) drops out after the
// TTL. Work is named ("deliver/<destination>", "process/<partition>"), and
// each name goes to the live node that rendezvous hashing prefers, so that
// names spread evenly and a node joining or leaving moves only its share.
// The preferred node takes the name's lease (a KV key holding its id) once
// it is free: at once when the holder hands it over (Release), after the
// TTL when the holder died. A holder keeps renewing a lease until it has
// stopped the work and released it, so two nodes never both believe they
// own a name while the KV is reachable; a holder that cannot renew stops
// believing it owns the name before the lease can expire (a renewal is
// due every TTL/3).
package lease

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket names.
const (
	NodesBucket  = "conflux_nodes"
	LeasesBucket = "conflux_leases"
)

// DefaultTTL is how long a dead node's leases last.
const DefaultTTL = 6 * time.Second

// Options configure a [Group].
type Options struct {
	// JetStream holds the buckets.
	JetStream jetstream.JetStream
	// Node is this node's id, unique in the cluster and the same across
	// its restarts (a restarted node takes its own leases back at once).
	Node string
	// TTL is how long a node's membership and leases outlive its last
	// renewal. Default: DefaultTTL.
	TTL time.Duration
	// Replicas of the buckets (as the streams'). Default: 1.
	Replicas int
	Logger   *slog.Logger
}

// Group is this node's view of the cluster: who is alive, and the leases
// it holds. It is safe for concurrent use.
type Group struct {
	opts   Options
	nodes  jetstream.KeyValue
	leases jetstream.KeyValue
	log    *slog.Logger

	mu      sync.Mutex
	live    []string            // live node ids, sorted, this one included
	wanted  map[string][]string // kind → names to spread
	held    map[string]uint64   // lease name → revision of our last write
	leaving map[string]bool     // held leases another node is preferred for
	// kick wakes Run for a round when the wanted names change.
	kick chan struct{}
}

// New opens (or creates) the buckets and announces the node; Run keeps it
// going.
func New(ctx context.Context, opts Options) (*Group, error) {
	opts.TTL = cmp.Or(opts.TTL, DefaultTTL)
	opts.Replicas = max(opts.Replicas, 1)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Node == "" || strings.ContainsAny(opts.Node, ". *>/") {
		return nil, fmt.Errorf("lease: node id %q must be non-empty, without dots, spaces, slashes or wildcards", opts.Node)
	}
	g := &Group{opts: opts, log: opts.Logger, wanted: map[string][]string{}, held: map[string]uint64{}, leaving: map[string]bool{}, kick: make(chan struct{}, 1)}
	var err error
	for _, b := range []struct {
		kv   *jetstream.KeyValue
		name string
	}{{&g.nodes, NodesBucket}, {&g.leases, LeasesBucket}} {
		// A cluster still forming answers with timeouts for a while.
		deadline := time.Now().Add(30 * time.Second)
		for {
			*b.kv, err = opts.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: b.name, TTL: opts.TTL, History: 1, Replicas: opts.Replicas, Storage: jetstream.FileStorage,
			})
			if err == nil {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return nil, fmt.Errorf("lease: opening bucket %s: %w", b.name, err)
			}
			opts.Logger.Warn("lease: opening a bucket failed; retrying", "bucket", b.name, "err", err)
			time.Sleep(500 * time.Millisecond)
		}
	}
	if err := g.heartbeat(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// Node is this node's id.
func (g *Group) Node() string { return g.opts.Node }

// Want sets the names of one kind of work to spread over the live nodes
// (all of them, this node's share or not); the group takes and gives
// leases for them on its next round.
func (g *Group) Want(kind string, names []string) {
	names = slices.Clone(names)
	slices.Sort(names)
	g.mu.Lock()
	changed := !slices.Equal(g.wanted[kind], names)
	g.wanted[kind] = names
	g.mu.Unlock()
	if changed {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
}

// Owns reports whether this node holds the lease of name and should do its
// work: false when another node is now preferred for it (stop the work,
// then Release it) or when the lease could not be renewed.
func (g *Group) Owns(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.held[name]
	return ok && !g.leaving[name]
}

// Holds reports whether this node holds the lease of name, to be released
// or not.
func (g *Group) Holds(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.held[name]
	return ok
}

// Leaving returns the names whose lease this node holds but should hand
// over (another node is preferred, or the name is no longer wanted): stop
// their work, then Release them.
func (g *Group) Leaving() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for n := range g.held {
		if g.leaving[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Release gives up the lease of name, once its work has stopped, so that
// the preferred node takes it at once.
func (g *Group) Release(ctx context.Context, name string) error {
	g.mu.Lock()
	rev, ok := g.held[name]
	delete(g.held, name)
	delete(g.leaving, name)
	g.mu.Unlock()
	if !ok {
		return nil
	}
	if err := g.leases.Delete(ctx, leaseKey(name), jetstream.LastRevision(rev)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("lease: releasing %s: %w", name, err)
	}
	return nil
}

// Live returns the ids of the live nodes, sorted.
func (g *Group) Live() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.live)
}

// Preferred returns the live node rendezvous hashing gives name to.
func (g *Group) Preferred(name string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return preferred(g.live, name)
}

func preferred(live []string, name string) string {
	best, bestScore := "", uint64(0)
	for _, n := range live {
		h := fnv.New64a()
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(n))
		if s := mix(h.Sum64()); best == "" || s > bestScore {
			best, bestScore = n, s
		}
	}
	return best
}

// mix is splitmix64's finalizer: FNV alone orders nodes that differ in
// one byte the same way for most names.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// leaseKey is the KV key of a lease name: KV keys take no slashes.
func leaseKey(name string) string { return strings.ReplaceAll(name, "/", ".") }

// Run renews the node's membership and leases and balances them, every
// third of the TTL, until ctx ends; then it releases every lease (the
// caller has stopped their work) and leaves.
func (g *Group) Run(ctx context.Context) error {
	t := time.NewTicker(g.opts.TTL / 3)
	defer t.Stop()
	for {
		g.round(ctx)
		select {
		case <-ctx.Done():
			g.leave()
			return nil
		case <-t.C:
		case <-g.kick:
		}
	}
}

// Tick runs one round now (tests, and a caller that just called Want).
func (g *Group) Tick(ctx context.Context) { g.round(ctx) }

func (g *Group) round(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	if err := g.heartbeat(ctx); err != nil {
		g.log.Warn("lease: renewing this node's membership failed", "node", g.opts.Node, "err", err)
	}
	if err := g.refreshLive(ctx); err != nil {
		g.log.Warn("lease: reading the live nodes failed", "err", err)
	}
	g.renew(ctx)
	g.acquire(ctx)
}

func (g *Group) heartbeat(ctx context.Context) error {
	if _, err := g.nodes.Put(ctx, g.opts.Node, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("lease: announcing node %s: %w", g.opts.Node, err)
	}
	return nil
}

func (g *Group) refreshLive(ctx context.Context) error {
	keys, err := g.nodes.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return err
	}
	if !slices.Contains(keys, g.opts.Node) {
		keys = append(keys, g.opts.Node)
	}
	slices.Sort(keys)
	g.mu.Lock()
	g.live = keys
	g.mu.Unlock()
	return nil
}

// renew rewrites every held lease; one that cannot be rewritten (another
// node has it now, or the KV is unreachable) is no longer owned.
func (g *Group) renew(ctx context.Context) {
	g.mu.Lock()
	held := make(map[string]uint64, len(g.held))
	for k, v := range g.held {
		held[k] = v
	}
	g.mu.Unlock()
	for name, rev := range held {
		nrev, err := g.leases.Update(ctx, leaseKey(name), []byte(g.opts.Node), rev)
		if ctx.Err() != nil {
			return // stopping: leave releases what is held
		}
		g.mu.Lock()
		if _, still := g.held[name]; still {
			if err != nil {
				delete(g.held, name)
				delete(g.leaving, name)
				g.log.Warn("lease: lost", "lease", name, "node", g.opts.Node, "err", err)
			} else {
				g.held[name] = nrev
			}
		}
		g.mu.Unlock()
	}
}

// acquire takes the free leases this node is preferred for, and marks the
// held ones another live node is preferred for as leaving.
func (g *Group) acquire(ctx context.Context) {
	g.mu.Lock()
	live := slices.Clone(g.live)
	var mine []string
	want := map[string]bool{}
	for _, names := range g.wanted {
		for _, n := range names {
			want[n] = true
			if preferred(live, n) == g.opts.Node {
				if _, ok := g.held[n]; !ok {
					mine = append(mine, n)
				}
			}
		}
	}
	for n := range g.held {
		g.leaving[n] = !want[n] || preferred(live, n) != g.opts.Node
	}
	g.mu.Unlock()
	for _, n := range mine {
		rev, err := g.take(ctx, n)
		if err != nil || rev == 0 {
			continue // held by another node (until it releases or expires)
		}
		g.mu.Lock()
		g.held[n] = rev
		delete(g.leaving, n)
		g.mu.Unlock()
		g.log.Debug("lease: acquired", "lease", n, "node", g.opts.Node)
	}
}

// take creates the lease of name, or takes it back from an earlier run of
// this node; 0 when another node holds it.
func (g *Group) take(ctx context.Context, name string) (uint64, error) {
	key := leaseKey(name)
	rev, err := g.leases.Create(ctx, key, []byte(g.opts.Node))
	if err == nil {
		return rev, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, err
	}
	e, err := g.leases.Get(ctx, key)
	if err != nil {
		return 0, nil
	}
	if string(e.Value()) != g.opts.Node {
		return 0, nil
	}
	rev, err = g.leases.Update(ctx, key, []byte(g.opts.Node), e.Revision())
	if err != nil {
		return 0, nil
	}
	return rev, nil
}

// leave releases what is still held and removes the node, so that the
// others take over at once rather than after the TTL.
func (g *Group) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	g.mu.Lock()
	names := make([]string, 0, len(g.held))
	for n := range g.held {
		names = append(names, n)
	}
	g.mu.Unlock()
	for _, n := range names {
		_ = g.Release(ctx, n)
	}
	_ = g.nodes.Delete(ctx, g.opts.Node)
}

// Owners returns every lease in the cluster and the node holding it, by
// lease name ("process/p00": "node-a"), as the bucket holds them now.
func (g *Group) Owners(ctx context.Context) (map[string]string, error) {
	keys, err := g.leases.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lease: listing the leases: %w", err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		e, err := g.leases.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("lease: reading lease %s: %w", k, err)
		}
		out[strings.ReplaceAll(k, ".", "/")] = string(e.Value()) // names hold no dots
	}
	return out, nil
}

// Register adds GET /api/v1/cluster, wrapped by auth: this node's id, the
// live nodes, and who holds each lease (which node processes which
// partition, delivers for which destination, writes the identity graph).
func (g *Group) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/cluster", auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owners, err := g.Owners(r.Context())
		if err != nil {
			httpapi.WriteError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"node": g.opts.Node, "nodes": g.Live(), "leases": owners})
	})))
}
