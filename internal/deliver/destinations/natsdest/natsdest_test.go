package natsdest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/testenv"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSURLEnv names the environment variable holding the NATS server (with
// JetStream) the tests publish to, the same one internal/stream's tests
// read; DefaultNATSURL is the machine's.
const (
	NATSURLEnv     = "CONFLUX_TEST_NATS_URL"
	DefaultNATSURL = "nats://127.0.0.1:4222"
)

// machineNATS returns the URL of the test NATS server and a connection to
// it for reading back, skipping the test when it is unreachable (failing
// under CONFLUX_REQUIRE_SERVICES=1).
func machineNATS(t *testing.T) (string, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	url := testenv.Getenv(NATSURLEnv, DefaultNATSURL)
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	var js jetstream.JetStream
	if err == nil {
		if js, err = jetstream.New(nc); err == nil {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
		}
		if err != nil {
			nc.Close()
		}
	}
	if err != nil {
		testenv.Unavailable(t, "NATS with JetStream at "+url+" is unreachable (set "+NATSURLEnv+" to use another server): "+err.Error())
	}
	t.Cleanup(nc.Close)
	return url, nc, js
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// unique returns a name no other test run uses.
func unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// createStream creates a JetStream stream capturing subjects and deletes
// it when the test ends.
func createStream(t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(t.Context(), cfg)
	if err != nil {
		t.Fatalf("creating stream %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, cfg.Name); err != nil {
			t.Errorf("deleting stream %s: %v", cfg.Name, err)
		}
	})
	return s
}

// newDest builds a destination with settings and closes it when the test
// ends.
func newDest(t *testing.T, settings map[string]any) *Destination {
	t.Helper()
	d, err := New(t.Context(), deliver.Config{ID: "test", Settings: settings, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// event returns event n of source with a JSON body that names both.
func event(source, typ string, n int) *deliver.Event {
	id := fmt.Sprintf("msg-%s-%d", source, n)
	return &deliver.Event{
		MessageID: id, SourceID: source, Type: typ, Attempt: 1, ReceivedAt: time.Now(),
		JSON: fmt.Appendf(nil, `{"type":%q,"messageId":%q,"event":"Order Completed","properties":{"n":%d}}`, typ, id, n),
	}
}

func wantOutcomes(t *testing.T, results []deliver.Result, want ...deliver.Outcome) {
	t.Helper()
	if len(results) != len(want) {
		t.Fatalf("got %d results, want %d", len(results), len(want))
	}
	for i, r := range results {
		if r.Outcome != want[i] {
			t.Errorf("result %d: %s (reason %q, error %q), want %s", i, r.Outcome, r.Reason, r.Error, want[i])
		}
	}
}

// checkMsg checks that m carries e.
func checkMsg(t *testing.T, m *nats.Msg, subject string, e *deliver.Event) {
	t.Helper()
	if m.Subject != subject {
		t.Errorf("subject %q, want %q", m.Subject, subject)
	}
	if string(m.Data) != string(e.JSON) {
		t.Errorf("body %s, want %s", m.Data, e.JSON)
	}
	for k, want := range map[string]string{HeaderMsgID: e.MessageID, HeaderSource: e.SourceID, HeaderType: e.Type} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestCoreDelivers(t *testing.T) {
	url, nc, _ := machineNATS(t)
	prefix := unique("conflux_test_")
	sub, err := nc.SubscribeSync(prefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	d := newDest(t, map[string]any{"url": url, "subject": prefix + ".{{source}}.{{type}}"})

	events := []*deliver.Event{event("web", "track", 1), event("ios", "identify", 2), event("web", "page", 3)}
	wantOutcomes(t, d.Send(t.Context(), events), deliver.Delivered, deliver.Delivered, deliver.Delivered)
	for _, e := range events {
		m, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("reading the message of %s: %v", e.MessageID, err)
		}
		checkMsg(t, m, prefix+"."+e.SourceID+"."+e.Type, e)
	}
}

func TestCoreMessageTooLarge(t *testing.T) {
	url, nc, _ := machineNATS(t)
	d := newDest(t, map[string]any{"url": url, "subject": unique("conflux_test_")})
	big := event("web", "track", 2)
	big.JSON = fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", int(nc.MaxPayload())))

	results := d.Send(t.Context(), []*deliver.Event{event("web", "track", 1), big, event("web", "track", 3)})
	wantOutcomes(t, results, deliver.Delivered, deliver.Discard, deliver.Delivered)
	if r := results[1]; r.Reason != deliver.ReasonInvalidEvent || !strings.Contains(r.Error, "maximum payload") {
		t.Errorf("oversized event: reason %q, error %q; want %q naming the maximum payload", r.Reason, r.Error, deliver.ReasonInvalidEvent)
	}
	if !strings.HasPrefix(string(results[1].Request), "PUB ") || len(results[1].Request) > deliver.MaxRecorded {
		t.Errorf("recorded request: %d bytes starting %.40q; want a PUB line, at most %d bytes", len(results[1].Request), results[1].Request, deliver.MaxRecorded)
	}
}

func TestJetStreamDeliversAndDedups(t *testing.T) {
	url, _, js := machineNATS(t)
	name := unique("conflux_test_")
	stream := createStream(t, js, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: jetstream.MemoryStorage})
	d := newDest(t, map[string]any{"url": url, "subject": name + ".{{type}}", "jetstream": true})

	events := []*deliver.Event{event("web", "track", 1), event("web", "identify", 2), event("ios", "track", 3)}
	wantOutcomes(t, d.Send(t.Context(), events), deliver.Delivered, deliver.Delivered, deliver.Delivered)
	// A retry of the same events, as at-least-once delivery may make,
	// plus one new event: the stream keeps one message per messageId.
	again := append(events[1:], event("web", "track", 4))
	wantOutcomes(t, d.Send(t.Context(), again), deliver.Delivered, deliver.Delivered, deliver.Delivered)

	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := append(events, again[2])
	if info.State.Msgs != uint64(len(want)) {
		t.Fatalf("stream holds %d messages, want %d (the repeats dropped by %s)", info.State.Msgs, len(want), HeaderMsgID)
	}
	for i, e := range want {
		m, err := stream.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatalf("reading message %d: %v", i+1, err)
		}
		checkMsg(t, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}, name+"."+e.Type, e)
	}
}

func TestJetStreamPermanentErrors(t *testing.T) {
	url, _, js := machineNATS(t)
	name := unique("conflux_test_")
	createStream(t, js, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".small"}, Storage: jetstream.MemoryStorage, MaxMsgSize: 200})

	tests := []struct {
		name, subject string
		json          string
		wantError     string
	}{
		{"no stream captures the subject", name + ".elsewhere", `{"type":"track"}`, "no JetStream stream captures subject"},
		{"larger than the stream allows", name + ".small", `{"pad":"` + strings.Repeat("x", 300) + `"}`, "err_code=10054"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDest(t, map[string]any{"url": url, "subject": tc.subject, "jetstream": true})
			e := event("web", "track", 1)
			e.JSON = []byte(tc.json)
			start := time.Now()
			results := d.Send(t.Context(), []*deliver.Event{e, e})
			wantOutcomes(t, results, deliver.Discard, deliver.Discard)
			for _, r := range results {
				if r.Reason != deliver.ReasonDestinationError || !strings.Contains(r.Error, tc.wantError) {
					t.Errorf("reason %q, error %q; want %q with %q", r.Reason, r.Error, deliver.ReasonDestinationError, tc.wantError)
				}
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Send took %s to discard, want well within the 5s timeout", elapsed)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// silentServer returns the address of a server that accepts connections
// and never says a word.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func TestUnreachableServerRetries(t *testing.T) {
	for _, server := range []struct {
		name string
		addr func(*testing.T) string
	}{{"closed port", closedPort}, {"silent server", silentServer}} {
		for _, jetStream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/jetstream=%v", server.name, jetStream), func(t *testing.T) {
				const timeout = 800 * time.Millisecond
				start := time.Now()
				d := newDest(t, map[string]any{"url": "nats://" + server.addr(t), "subject": "conflux.events",
					"jetstream": jetStream, "timeout": timeout.String()})
				if elapsed := time.Since(start); elapsed > timeout+500*time.Millisecond {
					t.Errorf("New took %s, want at most about the timeout %s", elapsed, timeout)
				}
				start = time.Now()
				results := d.Send(t.Context(), []*deliver.Event{event("web", "track", 1), event("web", "track", 2)})
				if elapsed := time.Since(start); elapsed > timeout+500*time.Millisecond {
					t.Errorf("Send took %s, want at most about the timeout %s", elapsed, timeout)
				}
				wantOutcomes(t, results, deliver.Retry, deliver.Retry)
				for _, r := range results {
					if r.Reason != deliver.ReasonConnection || r.Error == "" {
						t.Errorf("reason %q, error %q; want %q with an explanation", r.Reason, r.Error, deliver.ReasonConnection)
					}
				}
			})
		}
	}
}

func TestSendHonoursContext(t *testing.T) {
	url, _, js := machineNATS(t)
	name := unique("conflux_test_")
	createStream(t, js, jetstream.StreamConfig{Name: name, Subjects: []string{name}, Storage: jetstream.MemoryStorage})
	d := newDest(t, map[string]any{"url": url, "subject": name, "jetstream": true})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	results := d.Send(ctx, []*deliver.Event{event("web", "track", 1)})
	wantOutcomes(t, results, deliver.Retry)
}

// embedded starts an in-process NATS server with opts on a free loopback
// port (or opts.Port) and shuts it down when the test ends. It serves the
// cases the machine's server cannot: authentication, permissions, a
// restart.
func embedded(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host = "127.0.0.1"
	if opts.Port == 0 {
		opts.Port = -1
	}
	opts.NoLog, opts.NoSigs = true, true
	if opts.JetStream && opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("starting NATS: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		s.Shutdown()
		t.Fatal("NATS did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func TestCredentials(t *testing.T) {
	srv := embedded(t, &server.Options{
		Users: []*server.User{{Username: "conflux", Password: "right"}},
	})
	tests := []struct {
		name     string
		settings map[string]any
		want     deliver.Outcome
	}{
		{"right password", map[string]any{"user": "conflux", "password": "right"}, deliver.Delivered},
		{"right password in the URL", map[string]any{"url": strings.Replace(srv.ClientURL(), "nats://", "nats://conflux:right@", 1)}, deliver.Delivered},
		{"wrong password", map[string]any{"user": "conflux", "password": "wrong"}, deliver.Discard},
		{"no credentials", map[string]any{}, deliver.Discard},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			settings := map[string]any{"url": srv.ClientURL(), "subject": "conflux.events", "timeout": "1s"}
			for k, v := range tc.settings {
				settings[k] = v
			}
			d := newDest(t, settings)
			results := d.Send(t.Context(), []*deliver.Event{event("web", "track", 1)})
			// Until the client has seen the refusal (it reports it
			// asynchronously), a Send may still get a plain Retry.
			for deadline := time.Now().Add(3 * time.Second); tc.want == deliver.Discard &&
				results[0].Outcome == deliver.Retry && results[0].Reason == deliver.ReasonConnection && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				results = d.Send(t.Context(), []*deliver.Event{event("web", "track", 1)})
			}
			wantOutcomes(t, results, tc.want)
			if tc.want == deliver.Discard && !strings.Contains(results[0].Error, "refused the credentials") {
				t.Errorf("error %q does not say the credentials were refused", results[0].Error)
			}
			if strings.Contains(results[0].Error, "right") || strings.Contains(string(results[0].Request), "right") {
				t.Errorf("the result reveals the password: %+v", results[0])
			}
		})
	}
}

func TestPermissionViolationDiscards(t *testing.T) {
	perms := &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"allowed.>", "$JS.API.>"}}}
	srv := embedded(t, &server.Options{
		JetStream: true,
		Users:     []*server.User{{Username: "conflux", Password: "pw", Permissions: perms}},
	})
	admin, err := nats.Connect(srv.ClientURL(), nats.UserInfo("conflux", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close) // after the stream's deletion, registered later
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, js, jetstream.StreamConfig{Name: "ALL", Subjects: []string{"allowed.>", "denied.>"}, Storage: jetstream.MemoryStorage})

	for _, jetStream := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%v", jetStream), func(t *testing.T) {
			d := newDest(t, map[string]any{"url": srv.ClientURL(), "user": "conflux", "password": "pw",
				"subject": "{{source}}.{{type}}", "jetstream": jetStream, "timeout": "2s"})
			start := time.Now()
			results := d.Send(t.Context(), []*deliver.Event{event("allowed", "track", 1), event("denied", "track", 2)})
			wantOutcomes(t, results, deliver.Delivered, deliver.Discard)
			if r := results[1]; !strings.Contains(r.Error, "Permissions Violation") {
				t.Errorf("error %q does not name the permissions violation", r.Error)
			}
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("Send took %s, want the violation found without waiting for the timeout", elapsed)
			}
		})
	}
}

func TestReconnects(t *testing.T) {
	for _, jetStream := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%v", jetStream), func(t *testing.T) {
			dir := t.TempDir()
			opts := func(port int) *server.Options {
				return &server.Options{Port: port, JetStream: true, StoreDir: dir}
			}
			srv := embedded(t, opts(0))
			port := srv.Addr().(*net.TCPAddr).Port
			if jetStream {
				nc, err := nats.Connect(srv.ClientURL())
				if err != nil {
					t.Fatal(err)
				}
				js, _ := jetstream.New(nc)
				if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"conflux.>"}}); err != nil {
					t.Fatal(err)
				}
				nc.Close()
			}
			d := newDest(t, map[string]any{"url": srv.ClientURL(), "subject": "conflux.events", "jetstream": jetStream, "timeout": "1s"})
			wantOutcomes(t, d.Send(t.Context(), []*deliver.Event{event("web", "track", 1)}), deliver.Delivered)

			srv.Shutdown()
			srv.WaitForShutdown()
			results := d.Send(t.Context(), []*deliver.Event{event("web", "track", 2)})
			wantOutcomes(t, results, deliver.Retry)

			embedded(t, opts(port)) // same port, same store: the stream is back
			deadline := time.Now().Add(8 * time.Second)
			for {
				results = d.Send(t.Context(), []*deliver.Event{event("web", "track", 2)})
				if results[0].Outcome == deliver.Delivered {
					break
				}
				if results[0].Outcome != deliver.Retry || time.Now().After(deadline) {
					t.Fatalf("after the restart: %s (%s), want delivered within 8s", results[0].Outcome, results[0].Error)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

func TestCloseTwice(t *testing.T) {
	d, err := New(t.Context(), deliver.Config{ID: "test", Settings: map[string]any{"url": "nats://" + closedPort(t), "subject": "e"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	r := d.Send(t.Context(), []*deliver.Event{event("web", "track", 1)})
	wantOutcomes(t, r, deliver.Retry)
	if r[0].Reason != deliver.ReasonConnection || !strings.Contains(r[0].Error, "closed") {
		t.Errorf("Send after Close: %q, want a closed-connection error", r[0].Error)
	}
}

func TestJetStreamAckTimeoutRetries(t *testing.T) {
	url, nc, _ := machineNATS(t)
	subject := unique("conflux_test_")
	// A plain subscriber takes the publish, so that the server does not
	// answer "no responders", and never acks it.
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const timeout = 500 * time.Millisecond
	d := newDest(t, map[string]any{"url": url, "subject": subject, "jetstream": true, "timeout": timeout.String()})
	start := time.Now()
	results := d.Send(t.Context(), []*deliver.Event{event("web", "track", 1), event("web", "track", 2)})
	elapsed := time.Since(start)
	wantOutcomes(t, results, deliver.Retry, deliver.Retry)
	for _, r := range results {
		if r.Reason != deliver.ReasonTimeout {
			t.Errorf("reason %q (%s), want %q", r.Reason, r.Error, deliver.ReasonTimeout)
		}
	}
	if elapsed < timeout-50*time.Millisecond || elapsed > timeout+500*time.Millisecond {
		t.Errorf("Send took %s, want about the timeout %s", elapsed, timeout)
	}
}
