package lease_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/lease"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/nats-io/nats.go/jetstream"
)

func newGroup(t *testing.T, js jetstream.JetStream, node string, ttl time.Duration) *lease.Group {
	t.Helper()
	g, err := lease.New(t.Context(), lease.Options{JetStream: js, Node: node, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// owners returns, for each name, the nodes of gs that own it.
func owners(gs []*lease.Group, names []string) map[string][]string {
	out := map[string][]string{}
	for _, n := range names {
		for _, g := range gs {
			if g.Owns(n) {
				out[n] = append(out[n], g.Node())
			}
		}
	}
	return out
}

// settle runs rounds of every group, releasing what they are leaving as
// a user of the group would, until every name has exactly one owner.
func settle(t *testing.T, gs []*lease.Group, names []string) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, g := range gs {
			g.Tick(t.Context())
			for _, n := range names {
				if g.Holds(n) && !g.Owns(n) {
					if err := g.Release(t.Context(), n); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		o := owners(gs, names)
		ok := len(o) == len(names)
		for _, nodes := range o {
			ok = ok && len(nodes) == 1
		}
		if ok {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("owners never settled: %v", o)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLeases(t *testing.T) {
	js := streamtest.New(t).JetStream()
	const ttl = 1500 * time.Millisecond
	names := make([]string, 12)
	for i := range names {
		names[i] = fmt.Sprintf("deliver/d%d", i)
	}

	a := newGroup(t, js, "a", ttl)
	a.Want("deliver", names)
	if o := settle(t, []*lease.Group{a}, names); len(o) != len(names) {
		t.Fatalf("one node owns %v", o)
	}

	// A node joins: each name moves to its preferred node, handed over.
	b := newGroup(t, js, "b", ttl)
	b.Want("deliver", names)
	o := settle(t, []*lease.Group{a, b}, names)
	count := map[string]int{}
	for n, nodes := range o {
		if want := b.Preferred(n); nodes[0] != want {
			t.Errorf("%s owned by %s, preferred %s", n, nodes[0], want)
		}
		count[nodes[0]]++
	}
	if count["a"] == 0 || count["b"] == 0 {
		t.Errorf("the names did not spread: %v", count)
	}
	if live := a.Live(); !slices.Equal(live, []string{"a", "b"}) {
		t.Errorf("live %v", live)
	}

	// b dies (stops renewing): after the TTL, a takes everything.
	start := time.Now()
	o = settle(t, []*lease.Group{a}, names)
	if took := time.Since(start); took < ttl/2 {
		t.Errorf("a took b's leases after %s, before they expired", took)
	}
	for n, nodes := range o {
		if nodes[0] != "a" {
			t.Errorf("%s owned by %v", n, nodes)
		}
	}

	// b restarts with its id: its preferred names move back.
	b = newGroup(t, js, "b", ttl)
	b.Want("deliver", names)
	settle(t, []*lease.Group{a, b}, names)

	// b leaves cleanly: a takes over at once, without waiting for the TTL.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	start = time.Now()
	settle(t, []*lease.Group{a}, names)
	if took := time.Since(start); took > ttl {
		t.Errorf("a took over after %s: b's clean leave should hand over at once", took)
	}

	// Names no longer wanted are left.
	a.Want("deliver", names[:2])
	a.Tick(t.Context())
	if a.Owns(names[5]) || !a.Owns(names[0]) {
		t.Errorf("after Want shrank: owns %s %v, %s %v", names[5], a.Owns(names[5]), names[0], a.Owns(names[0]))
	}
}

func TestNodeID(t *testing.T) {
	js := streamtest.New(t).JetStream()
	for _, bad := range []string{"", "a.b", "a b", "a/b", "*"} {
		if _, err := lease.New(t.Context(), lease.Options{JetStream: js, Node: bad}); err == nil {
			t.Errorf("node id %q accepted", bad)
		}
	}
}
