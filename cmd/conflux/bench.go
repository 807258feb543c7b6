package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/confluxcdp/conflux/internal/loadgen"
	"github.com/confluxcdp/conflux/internal/stream"
)

// bench runs `conflux bench ingest` (Tracking API load against a server
// at -url, an in-process Conflux, or, with -noop, an in-process no-op
// handler), `conflux bench deliver` (API in, webhook out, and the
// isolation of a healthy destination from a failing one), `conflux bench
// warehouse` (API in, PostgreSQL warehouse out: load rate and freshness)
// and `conflux bench dedup` (the dedup index at scale).
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "dedup" {
		return benchDedup(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "deliver" {
		return benchDeliver(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "warehouse" {
		return benchWarehouse(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "ingest" {
		fmt.Fprintln(stderr, "usage: conflux bench ingest|deliver|warehouse|dedup [flags]")
		return errUsage
	}
	fs := flagSet("bench ingest", stderr)
	var o loadgen.Options
	fs.StringVar(&o.URL, "url", "", "target base URL, e.g. http://127.0.0.1:8088; empty starts an in-process server with a temporary data directory")
	fs.StringVar(&o.WriteKey, "write-key", env("CONFLUX_WRITE_KEY", ""), "write key of the target's source (env CONFLUX_WRITE_KEY); in-process targets use their own")
	fs.IntVar(&o.Connections, "connections", loadgen.DefaultConnections, "concurrent connections, one request in flight each")
	fs.DurationVar(&o.Duration, "duration", loadgen.DefaultDuration, "measured duration")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "warm-up before the measured duration, not counted")
	fs.IntVar(&o.Body.Batch, "batch", loadgen.DefaultBatch, "events per request: 1 sends single events to /v1/track, more sends /v1/batch")
	fs.IntVar(&o.Body.EventBytes, "event-bytes", loadgen.DefaultEventBytes, "approximate size of each event's JSON")
	fs.IntVar(&o.Body.Users, "users", loadgen.DefaultUsers, "distinct userIds the events spread over")
	fs.Float64Var(&o.Rate, "rate", 0, "target events/s on an open-loop schedule, latency measured from each request's due time; 0 sends as fast as possible")
	fs.BoolVar(&o.Body.Gzip, "gzip", false, "gzip the request bodies")
	noop := fs.Bool("noop", false, "target an in-process no-op handler that reads the body and answers {\"success\":true}: this machine's ceiling")
	fsync := fs.String("fsync", "always", "log sync of the in-process Conflux: always or interval")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process over the measured duration to `file`; with an in-process target it includes the server (load generator samples carry the label loadgen=client)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	mode, err := stream.ParseSyncMode(*fsync)
	if err != nil {
		return err
	}

	var target *loadgen.Target
	switch {
	case *noop && o.URL != "":
		return errors.New("-noop and -url exclude each other")
	case *noop:
		target, err = loadgen.StartNoop()
	case o.URL == "":
		logger, lerr := newLogger(stderr, "warn", "text")
		if lerr != nil {
			return lerr
		}
		target, err = loadgen.StartConflux(ctx, loadgen.ConfluxOptions{Fsync: mode, Logger: logger})
	case o.WriteKey == "":
		return errors.New("-url needs -write-key (or CONFLUX_WRITE_KEY)")
	}
	if err != nil {
		return err
	}
	if target != nil {
		defer func() {
			if cerr := target.Close(); cerr != nil {
				fmt.Fprintln(stderr, "conflux: stopping the in-process target:", cerr)
			}
		}()
		o.URL, o.WriteKey, o.Target = target.URL, target.WriteKey, target.Name
	}

	var prof *os.File
	if *cpuprofile != "" {
		if prof, err = os.Create(*cpuprofile); err != nil {
			return err
		}
		o.CPUProfile = prof
	}

	res, err := loadgen.Run(ctx, o)
	if prof != nil {
		if cerr := prof.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("writing the CPU profile: %w", cerr)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, res.Text())
	switch {
	case res.OK == 0:
		return errors.New("no request succeeded")
	case res.FailedFraction() > 0.01:
		return fmt.Errorf("%d of %d requests failed (%.1f%%, more than 1%%)", res.Failed, res.OK+res.Failed, 100*res.FailedFraction())
	}
	return nil
}
