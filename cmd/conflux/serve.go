package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver/destinations"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/functiondest"
	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/redis/go-redis/v9"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("serve", stderr)
	var o server.Options
	fs.StringVar(&o.ConfigPath, "config", env("CONFLUX_CONFIG", ""), "workspace config file, YAML (env CONFLUX_CONFIG)")
	fs.StringVar(&o.DataDir, "data", env("CONFLUX_DATA", "conflux-data"), "data directory: embedded log and SQLite state (env CONFLUX_DATA)")
	fs.StringVar(&o.Addr, "addr", env("CONFLUX_ADDR", "127.0.0.1:8088"), "HTTP listen address (env CONFLUX_ADDR)")
	fs.StringVar(&o.NATSURL, "nats-url", env("CONFLUX_NATS_URL", ""), "external NATS server or cluster instead of the embedded one (env CONFLUX_NATS_URL)")
	fs.IntVar(&o.NATSReplicas, "nats-replicas", 1, "replicas of each stream on an external cluster")
	fs.StringVar(&o.NodeID, "node-id", env("CONFLUX_NODE_ID", ""), "this node's id in a cluster, the same across restarts (default: kept in the data directory) (env CONFLUX_NODE_ID)")
	fs.StringVar(&o.PostgresURL, "postgres-url", env("CONFLUX_POSTGRES_URL", ""), "PostgreSQL for state instead of SQLite (env CONFLUX_POSTGRES_URL)")
	fsync := fs.String("fsync", env("CONFLUX_FSYNC", "always"), "log sync: always (survives power loss) or interval (survives kill -9 only) (env CONFLUX_FSYNC)")
	fs.IntVar(&o.MetricsMaxEventNames, "metrics-max-event-names", 200, "distinct event names per source the delivery metrics keep; the rest count as (other)")
	fs.BoolVar(&o.NoProfiles, "no-profiles", false, "do not resolve identities or keep profiles (no Profile API): delivery only")
	fs.BoolVar(&o.NoArchive, "no-archive", false, "do not archive processed events to Parquet files under the data directory")
	fs.Int64Var(&o.DedupIDsPerDay, "dedup-ids-per-day", 4<<20, "message ids expected per day: sizes the dedup filters (2 bytes per id per day of the window)")
	minFree := fs.Int64("min-free-disk-mb", 256, "answer 503 to ingest when the data directory has less free space (MiB; -1 disables)")
	logLevel := fs.String("log-level", env("CONFLUX_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env CONFLUX_LOG_LEVEL)")
	logFormat := fs.String("log-format", env("CONFLUX_LOG_FORMAT", "text"), "log format: text or json (env CONFLUX_LOG_FORMAT)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if o.Fsync, err = stream.ParseSyncMode(*fsync); err != nil {
		return err
	}
	o.MinFreeDisk = *minFree << 20
	if *minFree < 0 {
		o.MinFreeDisk = -1
	}
	if o.Logger, err = newLogger(stderr, *logLevel, *logFormat); err != nil {
		return err
	}
	o.Banner = stdout
	// go-redis (the redis_stream destination) logs through a logger of
	// its own; the process has one place for logs.
	redis.SetLogger(redisLogger{o.Logger.With("component", "redis")})
	srv, err := server.New(ctx, o)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// redisLogger sends go-redis's log lines to slog, as warnings (it logs
// only what went wrong: failed dials, bad pool connections).
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}

func check(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("check", stderr)
	path := fs.String("config", env("CONFLUX_CONFIG", "conflux.yaml"), "config file to validate (env CONFLUX_CONFIG)")
	fs.StringVar(path, "c", *path, "shorthand for -config")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if err := cfg.CheckDestinations(context.Background(), destinations.Builtin(functiondest.Runtime{}).Check); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: OK (%d sources, %d destinations)\n", *path, len(cfg.Sources), len(cfg.Destinations))
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
