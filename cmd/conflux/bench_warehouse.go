package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/loadgen"
	"github.com/jackc/pgx/v5/pgxpool"
)

// benchWarehouse runs `conflux bench warehouse`: the Tracking API in, a
// PostgreSQL warehouse out, all in one process, reporting the rows loaded
// per second and the freshness — from a marker event's acknowledgement to
// when a query sees it — at that rate.
func benchWarehouse(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench warehouse", stderr)
	url := fs.String("pg", env("CONFLUX_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "the warehouse: a PostgreSQL connection string")
	interval := fs.Duration("interval", 10*time.Second, "the destination's load interval")
	duration := fs.Duration("duration", 30*time.Second, "how long the load generator sends")
	rate := fs.Float64("rate", 20000, "events/s the load generator sends (open loop); 0: as fast as it can")
	batch := fs.Int("batch", loadgen.DefaultBatch, "events per Tracking API request")
	connections := fs.Int("connections", 8, "load generator connections")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	conn, err := pgxpool.New(ctx, *url) // shared by the marker poller and the final count
	if err != nil {
		return fmt.Errorf("connecting to the warehouse: %w", err)
	}
	defer conn.Close()
	source := fmt.Sprintf("benchwh%d", time.Now().UnixNano())
	defer func() { _, _ = conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+source+` CASCADE`) }()

	dir, err := os.MkdirTemp("", "conflux-bench-warehouse-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const writeKey, admin = "benchWarehouseWriteKey0000000001", "benchAdminToken000000000000000000000001"
	cfg := fmt.Sprintf(`admin_token: %s
sources:
  - id: %s
    write_key: %s
destinations:
  - id: dw
    type: postgres
    sources: [%s]
    settings: {url: %q, interval: %s}
`, admin, source, writeKey, source, *url, *interval)
	path := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	target, err := loadgen.StartConflux(ctx, loadgen.ConfluxOptions{DataDir: filepath.Join(dir, "data"), ConfigPath: path, NoProfiles: true})
	if err != nil {
		return err
	}
	defer target.Close()
	if err := waitQueue(ctx, target.URL, admin, "dw"); err != nil {
		return err
	}

	// Markers: one event every 200 ms, each timed from its 200 to when a
	// query of the warehouse sees it.
	m := &markers{acked: map[string]time.Time{}, seen: map[string]time.Duration{}}
	mctx, stopMarkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { m.send(mctx, target.URL, writeKey) })
	wg.Go(func() { m.poll(mctx, conn, source) })

	start := time.Now()
	res, err := loadgen.Run(ctx, loadgen.Options{URL: target.URL, WriteKey: target.WriteKey, Target: target.Name,
		Connections: *connections, Duration: *duration, Rate: *rate, Body: loadgen.BodyOptions{Batch: *batch}})
	if err != nil {
		stopMarkers()
		wg.Wait()
		return err
	}
	sent := time.Since(start)
	// Wait until the warehouse has every accepted event.
	want := res.Events
	var have int64
	var last time.Time
	for deadline := time.Now().Add(2**interval + 15*time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*), max(uuid_ts) FROM `+source+`.tracks WHERE event <> 'freshness_marker'`).Scan(&have, &last); err == nil && have >= want {
			break
		}
	}
	stopMarkers()
	wg.Wait()
	loaded := last.Sub(start)
	// Each track is a row of tracks and one of its event's table.
	rows := 2 * have
	fmt.Fprintf(stdout, "accepted %d events in %s (%.0f events/s in); the warehouse had all %d by %s: %.0f rows/s loaded (%d rows, interval %s)\n",
		res.Events, sent.Round(time.Millisecond), float64(res.Events)/sent.Seconds(), have, loaded.Round(time.Millisecond),
		float64(rows)/loaded.Seconds(), rows, *interval)
	lat := m.latencies()
	if len(lat) > 0 {
		fmt.Fprintf(stdout, "freshness (acknowledged to queryable) of %d markers: p50 %s, p99 %s, max %s (target: under twice the interval, %s)\n",
			len(lat), pct(lat, 50), pct(lat, 99), lat[len(lat)-1], 2**interval)
	}
	if n, failed, errs, err := syncSummary(ctx, target.URL, admin); err == nil {
		fmt.Fprintf(stdout, "loads: %d (%d failed)%s\n", n, failed, errs)
	}
	if have < want {
		req, _ := http.NewRequestWithContext(ctx, "GET", target.URL+"/api/v1/destinations/dw/delivery", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Fprintf(stdout, "queue: %s\n", b)
		}
		return fmt.Errorf("the warehouse has %d of %d accepted events", have, want)
	}
	return nil
}

// syncSummary counts the destination's loads from its sync history.
func syncSummary(ctx context.Context, base, admin string) (n, failed int, errs string, err error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/destinations/dw/syncs?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	var body struct {
		Syncs []struct {
			Status, Error string
		} `json:"syncs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, 0, "", err
	}
	for _, s := range body.Syncs {
		if s.Status != "success" {
			failed++
			if errs == "" {
				errs = "; first error: " + s.Error
			}
		}
	}
	return len(body.Syncs), failed, errs, nil
}

// waitQueue waits for destination dest's queue to run, so that a
// measurement does not start before it (shared by the deliver and
// warehouse benchmarks).
func waitQueue(ctx context.Context, base, admin, dest string) error {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/destinations/"+dest+"/delivery", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(`"running":true`)) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the destination's queue did not start within 10s")
		}
	}
}

// markers times marker events from their acknowledgement to when the
// warehouse shows them.
type markers struct {
	mu    sync.Mutex
	acked map[string]time.Time
	seen  map[string]time.Duration
}

func (m *markers) send(ctx context.Context, base, writeKey string) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := fmt.Sprintf("marker-%d", n)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/track",
			strings.NewReader(`{"userId":"marker","event":"Freshness Marker","messageId":"`+id+`"}`))
		req.SetBasicAuth(writeKey, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			m.mu.Lock()
			m.acked[id] = time.Now()
			m.mu.Unlock()
		}
	}
}

func (m *markers) poll(ctx context.Context, conn *pgxpool.Pool, schema string) {
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		rows, err := conn.Query(ctx, `SELECT id FROM `+schema+`.freshness_marker`)
		if err != nil {
			continue
		}
		now := time.Now()
		m.mu.Lock()
		for rows.Next() {
			var id string
			if rows.Scan(&id) != nil {
				continue
			}
			if at, ok := m.acked[id]; ok {
				if _, done := m.seen[id]; !done {
					m.seen[id] = now.Sub(at)
				}
			}
		}
		m.mu.Unlock()
		rows.Close()
	}
}

func (m *markers) latencies() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]time.Duration, 0, len(m.seen))
	for _, d := range m.seen {
		out = append(out, d.Round(time.Millisecond))
	}
	slices.Sort(out)
	return out
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}
