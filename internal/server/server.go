// Package server is the composition root of `conflux serve`: it opens the
// state store and the log, builds each stage with its dependencies, mounts
// the HTTP APIs on one listener, and shuts everything down in the order
// that keeps the promise "nothing acknowledged is lost".
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate"
	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/aggregate/profile"
	"github.com/confluxcdp/conflux/internal/archive"
	"github.com/confluxcdp/conflux/internal/collect"
	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/functiondest"
	"github.com/confluxcdp/conflux/internal/deliver/warehouse"
	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/confluxcdp/conflux/internal/lease"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/confluxcdp/conflux/internal/observe/alert"
	"github.com/confluxcdp/conflux/internal/process"
	"github.com/confluxcdp/conflux/internal/process/suppress"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/web"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// Options configure a server. Zero values take the documented defaults.
type Options struct {
	// Addr to listen on. Default: 127.0.0.1:8088.
	Addr string
	// DataDir holds the embedded log and the SQLite state. Default: ./conflux-data.
	DataDir string
	// ConfigPath is the YAML workspace file; empty runs without one.
	ConfigPath string
	// NATSURL points at an external NATS cluster instead of the embedded server.
	NATSURL string
	// NATSReplicas is the replica count of each stream. Default: 1.
	NATSReplicas int
	// NodeID names this node in the cluster's leases; it must stay the
	// same across restarts. Default: the id kept in <DataDir>/node-id,
	// generated on first start.
	NodeID string
	// PostgresURL points at PostgreSQL for state instead of SQLite.
	PostgresURL string
	// Fsync is the embedded log's sync mode. Default: stream.SyncAlways.
	Fsync stream.SyncMode
	// DedupIDsPerDay sizes the processing stage's dedup filters: the
	// message ids expected per day. Default: 4 Mi (see process.Options).
	DedupIDsPerDay int64
	// MetricsFlushEvery is how often delivery metrics reach the state
	// store (and the delivery-metrics API). Default: 10s.
	MetricsFlushEvery time.Duration
	// MetricsMaxEventNames bounds the event names per source the delivery
	// metrics keep apart; the rest count as "(other)". Default: 200.
	MetricsMaxEventNames int
	// AlertEvery is how often alert rules are evaluated. Default: 30s.
	AlertEvery time.Duration
	// NoDeliveryMetrics turns the delivery metrics off (the API then
	// answers zeros): for measuring what they cost.
	NoDeliveryMetrics bool
	// NoProfiles turns identity resolution and profiles off: no
	// aggregation stage, no Profile API (delivery only).
	NoProfiles bool
	// NoArchive turns the Parquet event archive off.
	NoArchive bool
	// MinFreeDisk is the free space below which ingest answers 503.
	// Default: 256 MiB. Negative disables the check.
	MinFreeDisk int64
	// ShutdownTimeout bounds the graceful drain of in-flight requests. Default: 30s.
	ShutdownTimeout time.Duration
	// Logger for the whole process.
	Logger *slog.Logger
	// Banner receives the human start-up summary (address, data directory,
	// write key). Nil prints nothing.
	Banner io.Writer
}

func (o *Options) defaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8088"
	}
	if o.DataDir == "" {
		o.DataDir = "conflux-data"
	}
	if o.Fsync == "" {
		o.Fsync = stream.SyncAlways
	}
	if o.MinFreeDisk == 0 {
		o.MinFreeDisk = 256 << 20
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a running Conflux node.
type Server struct {
	opts     Options
	logger   *slog.Logger
	db       *store.DB
	log      *stream.Log
	appender *stream.Appender
	manager  *config.Manager
	suppress *suppress.List
	process  *process.Leased
	deliver  *deliver.Engine
	profiles *aggregate.Stage
	archive  *archive.Archiver
	metrics  *observe.Recorder
	alerts   *alert.Evaluator
	// functions runs source, destination and insert functions.
	functions *function.Runner
	// leases decide which node does which share of the work.
	leases *lease.Group
	// violations counts tracking-plan violations for the violations API.
	violations *process.Violations
	http       *http.Server
	listener   net.Listener

	// DefaultSource is the source whose write key the banner shows.
	DefaultSource config.Source
	// AdminToken is the Config API's bearer token.
	AdminToken string
	// ProfileSpace is the Profile API's space, with its access token.
	ProfileSpace config.Profiles
	// profileTokenStored: the space's token was generated and kept in
	// the state store (the banner shows it), not given in the file.
	profileTokenStored bool
}

// New opens the stores and builds every stage; Run serves. On error
// everything opened so far is closed.
func New(ctx context.Context, opts Options) (_ *Server, err error) {
	opts.defaults()
	s := &Server{opts: opts, logger: opts.Logger}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	var cfg *config.Config
	if opts.ConfigPath != "" {
		if cfg, err = config.Load(opts.ConfigPath); err != nil {
			return nil, err
		}
	} else {
		cfg = &config.Config{}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.functions = function.NewRunner(function.Options{Logger: opts.Logger.With("component", "function"), Metrics: function.NewMetrics(reg)})
	registry := destinations.Builtin(functiondest.Runtime{Run: s.functions, Workspace: func() *config.Workspace { return s.manager.Current() }})
	if err := cfg.CheckDestinations(ctx, registry.Check); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", opts.DataDir, err)
	}

	storeOpts := store.Options{SQLitePath: filepath.Join(opts.DataDir, "conflux.db"), PostgresURL: opts.PostgresURL, Logger: opts.Logger}
	if s.db, err = store.Open(ctx, storeOpts); err != nil {
		return nil, err
	}
	repo := config.NewRepo(s.db)
	report, err := repo.ApplyFile(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("applying %s: %w", opts.ConfigPath, err)
	}
	s.logger.Debug("config file applied", "report", fmt.Sprintf("%+v", report))
	if s.DefaultSource, _, err = repo.EnsureDefaultSource(ctx); err != nil {
		return nil, err
	}
	if s.AdminToken, err = adminToken(ctx, repo, cfg); err != nil {
		return nil, err
	}
	s.ProfileSpace = cfg.Profiles.WithDefaults()
	if s.ProfileSpace.AccessToken == "" {
		tok, err := storedToken(ctx, repo, "profiles_access_token")
		if err != nil {
			return nil, err
		}
		s.ProfileSpace.AccessToken, s.profileTokenStored = config.Secret(tok), true
	}
	s.manager = config.NewManager(repo, config.Settings{
		AdminToken: config.Secret(s.AdminToken), PublicURL: cfg.PublicURL, TrustedProxies: cfg.TrustedProxies,
		DedupWindow: cfg.DedupWindow, Profiles: s.ProfileSpace,
	}, opts.Logger.With("component", "config"))
	if err := s.manager.Reload(ctx); err != nil {
		return nil, err
	}

	s.alerts = alert.New(s.db, s.manager.Current, alert.Options{Every: opts.AlertEvery, Logger: opts.Logger.With("component", "alert")})

	s.suppress = suppress.New(s.db, opts.Logger.With("component", "suppress"))
	if err := s.suppress.Load(ctx); err != nil {
		return nil, err
	}

	if s.log, err = stream.Open(ctx, stream.Options{
		DataDir: opts.DataDir, URL: opts.NATSURL, Sync: opts.Fsync, Replicas: opts.NATSReplicas,
		Logger: opts.Logger,
	}); err != nil {
		return nil, err
	}

	s.metrics = observe.NewRecorder(s.db, observe.Options{FlushEvery: opts.MetricsFlushEvery, MaxEventNames: opts.MetricsMaxEventNames, Logger: opts.Logger.With("component", "observe")})
	counting := s.metrics // the stages count into it unless metrics are off
	if opts.NoDeliveryMetrics {
		counting = nil
	}
	plog := opts.Logger.With("component", "process")
	s.violations = process.NewViolations(s.db, plog)
	node, err := nodeID(opts)
	if err != nil {
		return nil, err
	}
	if s.leases, err = lease.New(ctx, lease.Options{JetStream: s.log.JetStream(), Node: node, Replicas: opts.NATSReplicas,
		Logger: opts.Logger.With("component", "lease")}); err != nil {
		return nil, err
	}
	s.process = process.NewLeased(s.log, process.Options{
		Dir:               filepath.Join(opts.DataDir, "process"),
		DedupWindow:       s.manager.Current().DedupWindow,
		ExpectedIDsPerDay: opts.DedupIDsPerDay,
		Pipeline:          process.NewRules(s.manager.Current, s.violations, plog).WithFunctions(s.functions),
		Metrics:           counting,
		Registerer:        reg,
		Logger:            plog,
	}, s.leases)
	s.deliver = deliver.New(deliver.Options{
		Log: s.log, DB: s.db, Registry: registry, Workspace: s.manager.Current, Metrics: counting,
		Functions: s.functions, Leases: s.leases, Refresh: s.manager.Reload, Registerer: reg, Logger: opts.Logger.With("component", "deliver"),
	})
	// Before the Tracking API serves: the file's new destinations start
	// at what the log holds now, not when their queues start.
	if err := s.deliver.Prime(ctx); err != nil {
		return nil, err
	}
	if !opts.NoProfiles {
		s.profiles = aggregate.New(aggregate.Options{
			Log: s.log, DB: s.db,
			Rules:      func() *identity.Rules { return s.manager.Current().Identity },
			Retention:  func() time.Duration { return s.manager.Current().Profiles.EventRetention },
			NoHistory:  func() bool { return s.manager.Current().Profiles.NoHistory },
			Registerer: reg, Logger: opts.Logger.With("component", "aggregate"),
		})
	}
	if !opts.NoArchive {
		if s.archive, err = archive.New(archive.Options{Log: s.log, Dir: filepath.Join(opts.DataDir, "archive"),
			Logger: opts.Logger.With("component", "archive")}); err != nil {
			return nil, err
		}
	}
	s.appender = stream.NewAppender(s.log.JetStream(), stream.AppenderOptions{Registerer: reg,
		MaxMessageBytes: min(4<<20, s.log.MaxPayload()-64<<10)})
	gate := &diskGate{dir: opts.DataDir, min: opts.MinFreeDisk}

	mux := http.NewServeMux()
	auth := func(h http.Handler) http.Handler {
		return httpapi.Bearer(func() string { return s.manager.Current().AdminToken.Value() }, h)
	}
	collect.New(collect.Options{Logger: opts.Logger.With("component", "collect"), Registerer: reg, Suppressions: s.suppress, Metrics: counting,
		Functions: s.functions},
		s.manager.Current, s.appender, gate).Register(mux)
	s.suppress.ForwardDeletions(func(ctx context.Context, r suppress.Regulation) error {
		_, err := s.deliver.ForwardDeletion(ctx, r.ID, r.SubjectIDs)
		return err
	})
	s.suppress.Register(mux, auth)
	collect.NewDebugger(s.log.JetStream(), s.manager.Current).Register(mux, auth)
	process.RegisterViolationsAPI(mux, auth, s.violations, s.manager.Current)
	configAPI := config.NewAPI(repo, s.manager)
	configAPI.DestinationCheck = registry.Check
	configAPI.AlertStates = s.alerts
	configAPI.Register(mux, auth)
	function.NewAPI(s.functions, functionSpecs{repo}).Register(mux, auth)
	s.leases.Register(mux, auth)
	s.deliver.Register(mux, auth)
	warehouse.RegisterAPI(mux, auth, s.db)
	archive.RegisterAPI(mux, auth, filepath.Join(opts.DataDir, "archive"), s.deliver.Enqueue, opts.Logger.With("component", "archive"))
	s.metrics.Register(mux, auth)
	s.alerts.Register(mux, auth)
	profileAPI := profile.NewAPI(profile.NewReader(s.db), func() profile.Space {
		p := s.manager.Current().Profiles
		return profile.Space{ID: p.SpaceID, AccessToken: p.AccessToken.Value(), Retention: p.EventRetention, RateLimit: p.RateLimit}
	}, func() *identity.Rules { return s.manager.Current().Identity }, opts.Logger.With("component", "profiles"))
	if !opts.NoProfiles {
		profileAPI.Register(mux)
		profileAPI.RegisterAdmin(mux, auth)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", serveReady(map[string]checker{
		"log":  s.log.Check,
		"disk": func(context.Context) error { return gate.Writable() },
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	web.Register(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})

	if s.listener, err = net.Listen("tcp", opts.Addr); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", opts.Addr, err)
	}
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// nodeID is the node's id in the cluster: the option, else the one kept
// in the data directory, generated on first start.
func nodeID(opts Options) (string, error) {
	if opts.NodeID != "" {
		return opts.NodeID, nil
	}
	path := filepath.Join(opts.DataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the node id: %w", err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := "node-" + hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keeping the node id in %s: %w", path, err)
	}
	return id, nil
}

// functionSpecs are the stored function versions, for the function tester.
type functionSpecs struct{ repo *config.Repo }

func (f functionSpecs) FunctionSpec(ctx context.Context, id string, version int) (function.Spec, error) {
	spec, err := f.repo.FunctionSpec(ctx, id, version)
	if errors.Is(err, config.ErrNotFound) {
		return spec, fmt.Errorf("%w: %w", function.ErrNotFound, err)
	}
	return spec, err
}

// adminToken returns the Config API token: the config file's, else the one
// generated on first start and kept in the state store.
func adminToken(ctx context.Context, repo *config.Repo, cfg *config.Config) (string, error) {
	if t := cfg.AdminToken.Value(); t != "" {
		return t, nil
	}
	return storedToken(ctx, repo, "admin_token")
}

// storedToken returns the token kept in the state store under key,
// generating it on first start.
func storedToken(ctx context.Context, repo *config.Repo, key string) (string, error) {
	t, ok, err := repo.Meta(ctx, key)
	if err != nil {
		return "", err
	}
	if ok {
		return t, nil
	}
	t = config.NewAdminToken()
	if err := repo.SetMeta(ctx, key, t); err != nil {
		return "", err
	}
	return t, nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Run serves until ctx ends, then shuts down: it stops accepting requests
// and waits for those in flight (each waits for its log append), then
// stops the appender and closes the log and the store.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	s.printBanner()
	s.logger.Info("conflux serving", "addr", s.Addr(), "data", s.opts.DataDir)

	bg, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer bgCancel()
	// The metrics recorder stops after the stages, so that it flushes
	// what they counted last.
	mctx, mCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer mCancel()
	// The leases are given up after the stages have stopped their work.
	lctx, lCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer lCancel()
	leasesDone := make(chan error, 1)
	go func() { leasesDone <- s.leases.Run(lctx) }()
	metricsDone := make(chan error, 1)
	go func() { metricsDone <- s.metrics.Run(mctx) }()
	var workers errgroup.Group
	workers.Go(func() error { return s.appender.Run(bg) })
	workers.Go(func() error { return s.manager.Run(bg) })
	workers.Go(func() error { return s.suppress.Run(bg) })
	workers.Go(func() error { return s.process.Run(bg) })
	workers.Go(func() error { return s.violations.Run(bg) })
	workers.Go(func() error { return s.deliver.Run(bg) })
	if s.profiles != nil {
		// One writer for the cluster's identity graph: the node holding
		// the lease "aggregate/identity" (its position claim keeps it
		// exactly once besides).
		workers.Go(func() error {
			s.leases.RunOwned(bg, "aggregate", []string{"aggregate/identity"}, func(ctx context.Context, _ []string) error {
				return s.profiles.Run(ctx)
			})
			return nil
		})
	}
	if s.archive != nil {
		workers.Go(func() error { return s.archive.Run(bg) })
	}
	workers.Go(func() error { return s.alerts.Run(bg) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(s.listener) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serving HTTP on %s: %w", s.Addr(), err)
	}
	s.logger.Info("conflux shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if e := s.http.Shutdown(sctx); e != nil && !errors.Is(e, http.ErrServerClosed) {
		s.logger.Warn("graceful shutdown incomplete", "err", e)
	}
	bgCancel()
	if e := workers.Wait(); e != nil && err == nil {
		err = e
	}
	lCancel()
	<-leasesDone
	mCancel()
	if e := <-metricsDone; e != nil && err == nil {
		err = fmt.Errorf("flushing delivery metrics: %w", e)
	}
	return err
}

func (s *Server) close() {
	if s.listener != nil {
		_ = s.listener.Close()
	}
	if s.log != nil {
		_ = s.log.Close()
	}
	if s.db != nil {
		_ = s.db.Close()
	}
	if s.functions != nil {
		s.functions.Close()
		s.functions = nil
	}
}

func (s *Server) printBanner() {
	w := s.opts.Banner
	if w == nil {
		return
	}
	state := "SQLite " + filepath.Join(s.opts.DataDir, "conflux.db")
	if s.opts.PostgresURL != "" {
		state = "PostgreSQL"
	}
	logDesc := fmt.Sprintf("embedded NATS JetStream in %s (fsync: %s)", filepath.Join(s.opts.DataDir, "nats"), s.opts.Fsync)
	if s.opts.NATSURL != "" {
		logDesc = "NATS JetStream at " + s.opts.NATSURL
	}
	fmt.Fprintf(w, "Conflux is listening on http://%s\n", s.Addr())
	fmt.Fprintf(w, "  data directory: %s\n", s.opts.DataDir)
	fmt.Fprintf(w, "  state store:    %s\n", state)
	fmt.Fprintf(w, "  log:            %s\n", logDesc)
	fmt.Fprintf(w, "  source:         %s (write key %s)\n", s.DefaultSource.ID, s.DefaultSource.WriteKey)
	if s.opts.ConfigPath == "" || s.manager.Current().AdminToken.Value() != "" {
		fmt.Fprintf(w, "  admin token:    %s\n", s.AdminToken)
	}
	token := "from the config file"
	if s.profileTokenStored {
		token = s.ProfileSpace.AccessToken.Value()
	}
	if s.opts.NoProfiles {
		fmt.Fprintf(w, "  profiles:       off (--no-profiles)\n")
	} else {
		fmt.Fprintf(w, "  profiles:       space %s (access token %s)\n", s.ProfileSpace.SpaceID, token)
	}
	fmt.Fprintf(w, "Try: curl -u %s: http://%s/v1/track -d '{\"userId\":\"u1\",\"event\":\"Hello\"}'\n", s.DefaultSource.WriteKey, s.Addr())
}
