// Package servertest runs a real Conflux server in the test process, on a
// loopback port with its data in a temporary directory, and reads back what
// its log holds.
package servertest

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
)

// Server is a running server.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL string
	// WriteKey of the default source, and its id.
	WriteKey, SourceID string
	// AdminToken of the Config API.
	AdminToken string
	// ProfileSpace and ProfileToken are the Profile API's space and its
	// access token.
	ProfileSpace, ProfileToken string
	// DataDir holds the log and the state.
	DataDir string

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start starts a server with opts (Addr defaults to 127.0.0.1:0, DataDir
// to t.TempDir()) and stops it when the test ends.
func Start(t testing.TB, opts server.Options) *Server {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	srv, err := server.New(t.Context(), opts)
	if err != nil {
		t.Fatalf("starting server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		URL: "http://" + srv.Addr(), WriteKey: srv.DefaultSource.WriteKey, SourceID: srv.DefaultSource.ID,
		AdminToken: srv.AdminToken, ProfileSpace: srv.ProfileSpace.SpaceID, ProfileToken: srv.ProfileSpace.AccessToken.Value(),
		DataDir: opts.DataDir, cancel: cancel, done: make(chan error, 1),
	}
	go func() { s.done <- srv.Run(ctx) }()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop shuts the server down gracefully and waits for it. It is safe to
// call twice.
func (s *Server) Stop(t testing.TB) {
	s.once.Do(func() {
		s.cancel()
		if err := <-s.done; err != nil {
			t.Errorf("server stopped with error: %v", err)
		}
	})
}

// ReadIngest opens the embedded log in dataDir — the server must be
// stopped — and returns every record of the ingest stream in order.
func ReadIngest(t testing.TB, dataDir string) []event.Record {
	t.Helper()
	return ReadStream(t, dataDir, stream.IngestStream)
}

// ReadStream opens the embedded log in dataDir — the server must be
// stopped — and returns every record of one stream in order.
func ReadStream(t testing.TB, dataDir, name string) []event.Record {
	t.Helper()
	ctx := context.Background()
	l, err := stream.Open(ctx, stream.Options{DataDir: dataDir})
	if err != nil {
		t.Fatalf("opening log in %s: %v", dataDir, err)
	}
	defer l.Close()
	return streamtest.StreamRecords(t, l, name)
}

// WaitMetric polls the server's /metrics until the sample named by
// series (name and labels exactly as exposed, e.g.
// `conflux_process_events_total{outcome="processed",source="web"}`)
// reaches at least want, and fails the test after 10 seconds.
func (s *Server) WaitMetric(t testing.TB, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last float64
	for time.Now().Before(deadline) {
		if v, ok := s.Metric(t, series); ok {
			last = v
			if v >= want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s = %v after 10s, want at least %v", series, last, want)
}

// Metric returns the current value of one sample of /metrics.
func (s *Server) Metric(t testing.TB, series string) (float64, bool) {
	t.Helper()
	return Metric(t, s.URL, series)
}

// Metric returns the current value of one sample (name and labels exactly
// as exposed) of the /metrics of the server at baseURL, which may be one
// this package did not start.
func Metric(t testing.TB, baseURL, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}
