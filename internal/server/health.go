package server

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/confluxcdp/conflux/internal/httpapi"
	"golang.org/x/sys/unix"
)

// diskGate refuses writes when the data directory's file system has less
// than min bytes free, so that the log is never driven into a half-written
// state by a full disk: the API answers 503 and the SDKs retry later.
type diskGate struct {
	dir     string
	min     int64
	checked atomic.Int64 // unix nanoseconds of the last statfs
	free    atomic.Int64
}

// freeBytes returns the free bytes, refreshed at most once a second.
func (g *diskGate) freeBytes() (int64, error) {
	now := time.Now().UnixNano()
	if now-g.checked.Load() < int64(time.Second) {
		return g.free.Load(), nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(g.dir, &st); err != nil {
		return 0, fmt.Errorf("checking free space of %s: %w", g.dir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	g.free.Store(free)
	g.checked.Store(now)
	return free, nil
}

// Writable implements collect.Gate.
func (g *diskGate) Writable() error {
	if g.min <= 0 {
		return nil
	}
	free, err := g.freeBytes()
	if err != nil {
		return err
	}
	if free < g.min {
		return fmt.Errorf("data directory %s has %d MiB free, below the %d MiB minimum", g.dir, free>>20, g.min>>20)
	}
	return nil
}

// checker is one readiness condition.
type checker func(ctx context.Context) error

// serveReady answers 200 when every check passes, else 503 naming the
// failures.
func serveReady(checks map[string]checker) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status := map[string]string{}
		ok := true
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status[name] = err.Error()
				ok = false
			} else {
				status[name] = "ok"
			}
		}
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		httpapi.WriteJSON(w, code, map[string]any{"ready": ok, "checks": status})
	}
}
