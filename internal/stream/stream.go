// Package stream is Conflux's durable log: NATS JetStream, either embedded
// in the process (file store under the data directory, no port opened) or a
// NATS cluster reached by URL. It creates the streams the stages talk
// through, and offers the group-commit [Appender] the Tracking API writes
// with.
//
// It deliberately knows nothing of events: messages are opaque bytes (see
// package event for the record framing inside them).
package stream

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subject names. docs/format/subjects.md describes them.
const (
	// IngestStream holds what the Tracking API accepted, in arrival order.
	IngestStream = "ingest"
	// IngestSubject is the one subject of IngestStream.
	IngestSubject = "ingest.events"
	// ProcessedStream holds the events the processing stage let through.
	ProcessedStream = "processed"
	// ProcessedSubject is the one subject of ProcessedStream.
	ProcessedSubject = "processed.events"
	// DLQStream holds what a stage could not process, with the reason.
	DLQStream = "dlq"
	// DLQProcessSubject is where the processing stage puts such messages.
	DLQProcessSubject = "dlq.process"
)

// SyncMode says when the embedded JetStream server syncs its files to disk.
type SyncMode string

const (
	// SyncAlways syncs before every acknowledgement: an acknowledged event
	// survives a power loss. The default.
	SyncAlways SyncMode = "always"
	// SyncInterval syncs every SyncEvery: an acknowledged event survives a
	// crash of the process (kill -9), not of the machine.
	SyncInterval SyncMode = "interval"
)

// ParseSyncMode parses a --fsync flag value.
func ParseSyncMode(s string) (SyncMode, error) {
	switch m := SyncMode(s); m {
	case SyncAlways, SyncInterval:
		return m, nil
	}
	return "", fmt.Errorf("fsync mode %q: want %q or %q", s, SyncAlways, SyncInterval)
}

// MaxMessageBytes is the largest log message: a group commit stays below
// it, and the server's max payload is set to it.
const MaxMessageBytes = 8 << 20

// Options configure [Open].
type Options struct {
	// DataDir holds the embedded server's store (under DataDir/nats).
	// Ignored when URL is set.
	DataDir string
	// URL of an external NATS server or cluster (comma-separated URLs).
	// Empty runs the embedded server.
	URL string
	// Sync is the embedded server's sync mode. Default: SyncAlways. An
	// external server's sync is its own configuration (sync_interval).
	Sync SyncMode
	// SyncEvery is the sync period in SyncInterval mode. Default: 1s.
	SyncEvery time.Duration
	// Replicas of each stream; 1 for the embedded server, 3 on a
	// three-server cluster. Default: 1.
	Replicas int
	// Retention is how long the ingest stream keeps messages.
	// Default: 7 days.
	Retention time.Duration
	// MaxIngestBytes bounds the ingest stream's size; past it, publishing
	// fails (and the API answers 503) rather than dropping old messages
	// that a stage may not have read yet. 0 means no bound besides the disk.
	MaxIngestBytes int64
	// Logger receives the embedded server's log lines.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Sync == "" {
		o.Sync = SyncAlways
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = time.Second
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Log is an open connection to JetStream with Conflux's streams in place.
type Log struct {
	opts Options
	srv  *server.Server // nil when external
	nc   *nats.Conn
	js   jetstream.JetStream
}

// Open starts the embedded server (unless opts.URL is set), connects, and
// creates or updates the streams.
func Open(ctx context.Context, opts Options) (*Log, error) {
	opts.defaults()
	l := &Log{opts: opts}
	var err error
	if opts.URL == "" {
		if l.srv, err = startEmbedded(opts); err != nil {
			return nil, err
		}
	}
	l.nc, err = l.connect("conflux")
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("connecting to NATS %s: %w", l.where(), err)
	}
	if l.js, err = jetstream.New(l.nc); err != nil {
		l.Close()
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	if err := l.ensureStreams(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// connect opens a connection to the log's server.
func (l *Log) connect(name string) (*nats.Conn, error) {
	if l.srv != nil {
		return nats.Connect("", nats.InProcessServer(l.srv), nats.Name(name), nats.MaxReconnects(-1))
	}
	return nats.Connect(l.opts.URL, nats.Name(name), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(false), nats.Timeout(5*time.Second))
}

func (l *Log) where() string {
	if l.opts.URL != "" {
		return l.opts.URL
	}
	return "(embedded)"
}

func startEmbedded(opts Options) (*server.Server, error) {
	dir := filepath.Join(opts.DataDir, "nats")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating log directory %s: %w", dir, err)
	}
	sopts := &server.Options{
		ServerName:             "conflux",
		DontListen:             true,
		JetStream:              true,
		StoreDir:               dir,
		SyncAlways:             opts.Sync == SyncAlways,
		SyncInterval:           opts.SyncEvery,
		MaxPayload:             MaxMessageBytes,
		MaxPending:             4 * MaxMessageBytes,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded NATS in %s: %w", dir, err)
	}
	srv.SetLoggerV2(&natsLogger{l: opts.Logger.With("component", "nats")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS in %s did not start within 30s", dir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS in %s: JetStream failed to start (see the log)", dir)
	}
	return srv, nil
}

func (l *Log) ensureStreams(ctx context.Context) error {
	base := jetstream.StreamConfig{
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      l.opts.Retention,
		MaxBytes:    -1,
		Discard:     jetstream.DiscardNew,
		MaxMsgSize:  MaxMessageBytes,
		Replicas:    l.opts.Replicas,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	}
	ingest := base
	ingest.Name, ingest.Subjects = IngestStream, []string{IngestSubject}
	ingest.Description = "Events accepted by the Tracking API, as framed records"
	if l.opts.MaxIngestBytes > 0 {
		ingest.MaxBytes = l.opts.MaxIngestBytes
	}
	processed := base
	processed.Name, processed.Subjects = ProcessedStream, []string{ProcessedSubject}
	processed.Description = "Events the processing stage let through (deduplicated), as framed records"
	dlq := base
	dlq.Name, dlq.Subjects = DLQStream, []string{"dlq.>"}
	dlq.Description = "Messages a stage could not process, with the reason in the Conflux-Reason header"
	dlq.Discard = jetstream.DiscardOld
	for _, cfg := range []jetstream.StreamConfig{ingest, processed, dlq} {
		if err := l.createStream(ctx, cfg); err != nil {
			return err
		}
	}
	return nil
}

// createStream creates or updates a stream, retrying for up to 30 s: a
// cluster that is still forming (its servers starting together, or a
// replica's server restarting) answers with a timeout or "no suitable
// peers" until it has the replicas' servers.
func (l *Log) createStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		_, err := l.js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("creating stream %q on %s: %w", cfg.Name, l.where(), err)
		}
		l.opts.Logger.Warn("creating a stream failed; retrying", "stream", cfg.Name, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// MaxPayload is the largest message this log takes: MaxMessageBytes, or
// less when the server says so (an external NATS server's max_payload
// defaults to 1 MiB). Writers that group records into one message keep
// below it, leaving room for headers.
func (l *Log) MaxPayload() int {
	if l.nc == nil {
		return MaxMessageBytes
	}
	return int(min(int64(MaxMessageBytes), l.nc.MaxPayload()))
}

// JetStream returns the JetStream handle, for consumers.
func (l *Log) JetStream() jetstream.JetStream { return l.js }

// Conn returns the NATS connection.
func (l *Log) Conn() *nats.Conn { return l.nc }

// Embedded reports whether the log runs in this process.
func (l *Log) Embedded() bool { return l.srv != nil }

// Check reports whether the log can take writes now: the connection is up
// and JetStream answers. It backs the readiness probe.
func (l *Log) Check(ctx context.Context) error {
	if !l.nc.IsConnected() {
		return fmt.Errorf("log %s: not connected (%s)", l.where(), l.nc.Status())
	}
	if _, err := l.js.Stream(ctx, IngestStream); err != nil {
		return fmt.Errorf("log %s: stream %q: %w", l.where(), IngestStream, err)
	}
	return nil
}

// Close closes the connection and stops the embedded server. Writers wait
// for their acknowledgements, so nothing acknowledged is pending here. It is
// safe to call twice.
func (l *Log) Close() error {
	if l.nc != nil {
		l.nc.Close()
	}
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
		l.srv = nil
	}
	return nil
}

// natsLogger sends the embedded server's log to slog.
type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Tracef(format string, v ...any)  {}
