package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/stream"
)

// Target is a server this process started for a run. Close stops it.
type Target struct {
	// URL is its base URL, e.g. http://127.0.0.1:41234.
	URL string
	// WriteKey authenticates to it.
	WriteKey string
	// Name describes it in a report.
	Name string

	stop func() error
	once sync.Once
	err  error
}

// Close stops the target and waits for it. It is safe to call twice.
func (t *Target) Close() error {
	t.once.Do(func() { t.err = t.stop() })
	return t.err
}

// StartNoop starts an HTTP server on a loopback port that reads each
// request's body and answers {"success":true}: the ceiling of what this
// machine can serve, fed the same way as Conflux.
func StartNoop() (*Target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the no-op server: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"success":true}`+"\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return &Target{
		URL: "http://" + ln.Addr().String(), WriteKey: "noop", Name: "in-process no-op handler",
		stop: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := srv.Shutdown(ctx)
			if e := <-done; !errors.Is(e, http.ErrServerClosed) && err == nil {
				err = e
			}
			return err
		},
	}, nil
}

// ConfluxOptions configure [StartConflux].
type ConfluxOptions struct {
	// Fsync is the log's sync mode. Default: stream.SyncAlways.
	Fsync stream.SyncMode
	// DataDir holds the log and the state. Default: a new temporary
	// directory, removed by Close.
	DataDir string
	// ConfigPath is a workspace file for the server; empty runs without one.
	ConfigPath string
	// NoDeliveryMetrics turns the server's delivery metrics off.
	NoDeliveryMetrics bool
	// NoProfiles turns the server's identity resolution and profiles off.
	NoProfiles bool
	// NoArchive turns the server's Parquet event archive off.
	NoArchive bool
	// Logger for the server. Default: discard.
	Logger *slog.Logger
}

// StartConflux starts a Conflux server in this process on a loopback port
// and returns it with its default source's write key.
func StartConflux(ctx context.Context, o ConfluxOptions) (*Target, error) {
	if o.Fsync == "" {
		o.Fsync = stream.SyncAlways
	}
	dir, remove := o.DataDir, false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "conflux-bench-"); err != nil {
			return nil, fmt.Errorf("creating a data directory: %w", err)
		}
		remove = true
	}
	cleanup := func() error {
		if remove {
			return os.RemoveAll(dir)
		}
		return nil
	}
	srv, err := server.New(ctx, server.Options{Addr: "127.0.0.1:0", DataDir: dir, Fsync: o.Fsync, ConfigPath: o.ConfigPath, NoDeliveryMetrics: o.NoDeliveryMetrics, NoProfiles: o.NoProfiles, NoArchive: o.NoArchive, Logger: o.Logger})
	if err != nil {
		_ = cleanup()
		return nil, fmt.Errorf("starting conflux: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	return &Target{
		URL: "http://" + srv.Addr(), WriteKey: srv.DefaultSource.WriteKey,
		Name: fmt.Sprintf("in-process conflux (fsync=%s)", o.Fsync),
		stop: func() error {
			cancel()
			return errors.Join(<-done, cleanup())
		},
	}, nil
}
