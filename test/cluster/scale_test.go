package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// cpuSeconds is the user and system CPU time a process has used.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // clock ticks (USER_HZ 100)
}

// TestNodeScaling measures ingest and end-to-end throughput, and CPU per
// event, with one, two and three Conflux nodes on one three-server NATS
// cluster (R3) and PostgreSQL. On this machine's two cores it shows the
// cost of coordination, not a speed-up. It is a measurement, not a check:
// run it with CONFLUX_CLUSTER_BENCH=1 (docs/benchmarks.md has the figures).
func TestNodeScaling(t *testing.T) {
	if os.Getenv("CONFLUX_CLUSTER_BENCH") == "" {
		t.Skip("a measurement: set CONFLUX_CLUSTER_BENCH=1 to run it")
	}
	bin := buildBinary(t)
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) { measureNodes(t, bin, n) })
	}
}

func measureNodes(t *testing.T, bin string, n int) {
	pg := storetest.PostgresSchema(t)
	natsProcs, natsURL := natsCluster(t)
	c := startConflux(t, bin, natsURL, pg, n, 100, n, "--no-profiles")
	rcv, nodes, addrs := c.rcv, c.nodes, c.addrs
	time.Sleep(3 * time.Second) // the leases settle
	cpu := func() (conflux, nats float64) {
		for _, p := range nodes {
			conflux += cpuSeconds(p.cmd.Process.Pid)
		}
		for _, p := range natsProcs {
			nats += cpuSeconds(p.cmd.Process.Pid)
		}
		return
	}
	c0, n0 := cpu()
	start := time.Now()
	var acked atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for b := 0; ctx.Err() == nil; b++ {
				batch := make([]map[string]any, 100)
				for i := range batch {
					batch[i] = map[string]any{"type": "track", "event": "Scale", "messageId": fmt.Sprintf("w%d-b%d-e%d", w, b, i),
						"userId": fmt.Sprintf("user-%d", (b*100+i)%5003), "properties": map[string]any{"b": b, "pad": strings.Repeat("x", 300)}}
				}
				if post(client, addrs[w%n], batch) {
					acked.Add(int64(len(batch)))
				}
			}
		})
	}
	wg.Wait()
	cancel()
	sent := time.Since(start)
	total := int(acked.Load())
	for deadline := time.Now().Add(3 * time.Minute); rcv.distinct() < total && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
	}
	end := rcv.lastDelivery()
	c1, n1 := cpu()
	t.Logf("%d node(s): %d events acknowledged in %s: %.0f events/s in; %d delivered, %.0f events/s end to end; CPU per 1,000 events: Conflux %.3f s, NATS %.3f s",
		n, total, sent.Round(time.Millisecond), float64(total)/sent.Seconds(), rcv.distinct(), float64(rcv.distinct())/end.Sub(start).Seconds(),
		(c1-c0)*1000/float64(total), (n1-n0)*1000/float64(total))
	if rcv.distinct() < total {
		t.Errorf("%d of %d events delivered", rcv.distinct(), total)
	}
}
