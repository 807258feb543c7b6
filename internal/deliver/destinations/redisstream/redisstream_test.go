package redisstream

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// RedisURLEnv names the environment variable holding the Redis server the
// tests append to; DefaultRedisURL is the machine's.
const (
	RedisURLEnv     = "CONFLUX_TEST_REDIS_URL"
	DefaultRedisURL = "redis://127.0.0.1:6379/0"
)

// machineRedis returns the URL of the test Redis server and a client to
// read back with, skipping the test when it is unreachable (failing under
// CONFLUX_REQUIRE_SERVICES=1).
func machineRedis(t *testing.T) (string, *redis.Client) {
	t.Helper()
	url := testenv.Getenv(RedisURLEnv, DefaultRedisURL)
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", RedisURLEnv, err)
	}
	o.MaxRetries, o.DialerRetries = -1, 1
	c := redis.NewClient(o)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	err = c.Ping(ctx).Err()
	cancel()
	if err != nil {
		_ = c.Close()
		testenv.Unavailable(t, "Redis at "+URL(url).String()+" is unreachable (set "+RedisURLEnv+" to use another server): "+err.Error())
	}
	t.Cleanup(func() { _ = c.Close() })
	return url, c
}

// uniqueKey returns a key prefix no other test run uses, and deletes
// every key under it when the test ends.
func uniqueKey(t *testing.T, c *redis.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "conflux_test:" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := c.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = c.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("deleting the test keys %s*: %v", prefix, err)
		}
	})
	return prefix
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

// checkEntries checks that stream key holds exactly events, in order.
func checkEntries(t *testing.T, c *redis.Client, key string, events ...*deliver.Event) {
	t.Helper()
	entries, err := c.XRange(t.Context(), key, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", key, err)
	}
	if len(entries) != len(events) {
		t.Fatalf("stream %s holds %d entries, want %d", key, len(entries), len(events))
	}
	for i, e := range events {
		want := map[string]any{FieldMessageID: e.MessageID, FieldSourceID: e.SourceID, FieldType: e.Type, FieldEvent: string(e.JSON)}
		got := entries[i].Values
		if len(got) != len(want) {
			t.Errorf("entry %d has fields %v, want %v", i, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("entry %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}
}

func TestDelivers(t *testing.T) {
	url, c := machineRedis(t)
	prefix := uniqueKey(t, c)
	d := newDest(t, map[string]any{"url": url, "stream": prefix + ":{{source}}"})

	events := []*deliver.Event{event("web", "track", 1), event("ios", "identify", 2), event("web", "page", 3)}
	wantOutcomes(t, d.Send(t.Context(), events), deliver.Delivered, deliver.Delivered, deliver.Delivered)
	checkEntries(t, c, prefix+":web", events[0], events[2])
	checkEntries(t, c, prefix+":ios", events[1])

	// A retry appends again: readers drop the repeat by message_id.
	wantOutcomes(t, d.Send(t.Context(), events[1:2]), deliver.Delivered)
	checkEntries(t, c, prefix+":ios", events[1], events[1])
}

func TestMaxLenTrims(t *testing.T) {
	url, c := machineRedis(t)
	key := uniqueKey(t, c)
	const maxLen = 10
	d := newDest(t, map[string]any{"url": url, "stream": key, "max_len": float64(maxLen)})
	const batches, per = 4, 250
	for b := range batches {
		events := make([]*deliver.Event, per)
		want := make([]deliver.Outcome, per)
		for i := range events {
			events[i], want[i] = event("web", "track", b*per+i), deliver.Delivered
		}
		wantOutcomes(t, d.Send(t.Context(), events), want...)
	}
	n, err := c.XLen(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole nodes (100 entries by default), never below n.
	if n < maxLen || n > 300 {
		t.Errorf("stream holds %d entries after %d appends with max_len %d; want about %d (at most a few hundred)", n, batches*per, maxLen, maxLen)
	}
}

func TestWrongTypeDiscards(t *testing.T) {
	url, c := machineRedis(t)
	prefix := uniqueKey(t, c)
	if err := c.Set(t.Context(), prefix+":web", "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	d := newDest(t, map[string]any{"url": url, "stream": prefix + ":{{source}}", "max_len": 1000.0})
	events := []*deliver.Event{event("web", "track", 1), event("ios", "track", 2), event("web", "track", 3)}
	results := d.Send(t.Context(), events)
	// One failing XADD does not fail the others of the pipeline.
	wantOutcomes(t, results, deliver.Discard, deliver.Delivered, deliver.Discard)
	for _, r := range []deliver.Result{results[0], results[2]} {
		if r.Reason != deliver.ReasonDestinationError || !strings.Contains(r.Error, "WRONGTYPE") {
			t.Errorf("reason %q, error %q; want %q with WRONGTYPE", r.Reason, r.Error, deliver.ReasonDestinationError)
		}
		if !strings.HasPrefix(string(r.Request), "XADD \""+prefix+":web\" MAXLEN ~ 1000 *\nmessage_id msg-web-") {
			t.Errorf("recorded request %q, want the XADD", r.Request)
		}
	}
	checkEntries(t, c, prefix+":ios", events[1])
}

func TestACLErrorsDiscard(t *testing.T) {
	url, c := machineRedis(t)
	prefix := uniqueKey(t, c)
	user := strings.ReplaceAll(prefix, ":", "_")
	// A user of its own, allowed XADD on the test's "allowed" keys only,
	// deleted when the test ends.
	if err := c.Do(t.Context(), "ACL", "SETUSER", user, "on", ">pw", "~"+prefix+":allowed*", "+xadd", "+hello", "+auth").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Do(ctx, "ACL", "DELUSER", user).Err(); err != nil {
			t.Errorf("ACL DELUSER %s: %v", user, err)
		}
	})
	withUser := func(password string) string {
		return strings.Replace(url, "redis://", "redis://"+user+":"+password+"@", 1)
	}
	tests := []struct {
		name, url string
		want      []deliver.Outcome
		wantError string
	}{
		{"allowed and forbidden keys", withUser("pw"), []deliver.Outcome{deliver.Delivered, deliver.Discard}, "NOPERM"},
		{"wrong password", withUser("wrong"), []deliver.Outcome{deliver.Discard, deliver.Discard}, "WRONGPASS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDest(t, map[string]any{"url": tc.url, "stream": prefix + ":{{source}}"})
			results := d.Send(t.Context(), []*deliver.Event{event("allowed", "track", 1), event("forbidden", "track", 2)})
			wantOutcomes(t, results, tc.want...)
			last := results[len(results)-1]
			if last.Reason != deliver.ReasonDestinationError || !strings.Contains(last.Error, tc.wantError) {
				t.Errorf("reason %q, error %q; want %q with %s", last.Reason, last.Error, deliver.ReasonDestinationError, tc.wantError)
			}
			for _, r := range results {
				if strings.Contains(r.Error, ":pw@") || strings.Contains(r.Error, ":wrong@") {
					t.Errorf("error %q reveals the password", r.Error)
				}
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

// fakeRedis serves the Redis protocol on a loopback port: it answers
// HELLO with an error (so the client speaks RESP2 without a handshake)
// and every other command with reply, a raw RESP line; an empty reply
// makes it read commands and never answer.
func fakeRedis(t *testing.T, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() { serveFake(conn, reply) })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

func serveFake(conn net.Conn, reply string) {
	r := bufio.NewReader(conn)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		switch {
		case strings.EqualFold(args[0], "hello"):
			_, err = io.WriteString(conn, "-ERR unknown command 'HELLO'\r\n")
		case reply == "":
			continue
		default:
			_, err = io.WriteString(conn, reply+"\r\n")
		}
		if err != nil {
			return
		}
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("want an array, got %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array header %q", line)
	}
	args := make([]string, n)
	for i := range args {
		if line, err = r.ReadString('\n'); err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, fmt.Errorf("bad bulk header %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

// TestErrorReplies checks the classification of the error replies that
// the machine's Redis cannot be made to give without disturbing others.
func TestErrorReplies(t *testing.T) {
	tests := []struct {
		reply string
		want  deliver.Outcome
	}{
		{"-LOADING Redis is loading the dataset in memory", deliver.Retry},
		{"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.", deliver.Retry},
		{"-READONLY You can't write against a read only replica.", deliver.Retry},
		{"-OOM command not allowed when used memory > 'maxmemory'.", deliver.Retry},
		{"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", deliver.Retry},
		{"-CLUSTERDOWN The cluster is down", deliver.Retry},
		{"-TRYAGAIN Multiple keys request during rehashing of slot", deliver.Retry},
		{"-ERR max number of clients reached", deliver.Retry},
		{"-WRONGTYPE Operation against a key holding the wrong kind of value", deliver.Discard},
		{"-NOPERM this user has no permissions to access one of the keys used as arguments", deliver.Discard},
		{"-ERR syntax error", deliver.Discard},
		{"-ERR The ID specified in XADD is equal or smaller than the target stream top item", deliver.Discard},
	}
	for _, tc := range tests {
		t.Run(strings.Fields(tc.reply)[0]+"/"+strings.Fields(tc.reply)[1], func(t *testing.T) {
			d := newDest(t, map[string]any{"url": "redis://" + fakeRedis(t, tc.reply) + "/0", "stream": "e", "timeout": "2s"})
			results := d.Send(t.Context(), []*deliver.Event{event("web", "track", 1), event("web", "track", 2)})
			wantOutcomes(t, results, tc.want, tc.want)
			for _, r := range results {
				if r.Reason != deliver.ReasonDestinationError || !strings.Contains(r.Error, tc.reply[1:]) {
					t.Errorf("reason %q, error %q; want %q with the reply's text", r.Reason, r.Error, deliver.ReasonDestinationError)
				}
			}
		})
	}
}

func TestUnreachableServerRetries(t *testing.T) {
	const timeout = 600 * time.Millisecond
	tests := []struct {
		name       string
		addr       func(*testing.T) string
		wantReason string
	}{
		{"closed port", closedPort, deliver.ReasonConnection},
		{"server that never answers", func(t *testing.T) string { return fakeRedis(t, "") }, deliver.ReasonTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			d := newDest(t, map[string]any{"url": "redis://" + tc.addr(t) + "/0", "stream": "e", "timeout": timeout.String()})
			if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
				t.Errorf("New took %s: it should not connect", elapsed)
			}
			start = time.Now()
			results := d.Send(t.Context(), []*deliver.Event{event("web", "track", 1), event("web", "track", 2)})
			if elapsed := time.Since(start); elapsed > timeout+500*time.Millisecond {
				t.Errorf("Send took %s, want at most about the timeout %s", elapsed, timeout)
			}
			wantOutcomes(t, results, deliver.Retry, deliver.Retry)
			for _, r := range results {
				if r.Reason != tc.wantReason || r.Error == "" {
					t.Errorf("reason %q, error %q; want %q with an explanation", r.Reason, r.Error, tc.wantReason)
				}
			}
		})
	}
}

func TestSendHonoursContext(t *testing.T) {
	d := newDest(t, map[string]any{"url": "redis://" + fakeRedis(t, "") + "/0", "stream": "e", "timeout": "10s"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	results := d.Send(ctx, []*deliver.Event{event("web", "track", 1)})
	wantOutcomes(t, results, deliver.Retry)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Send took %s after its context ended at 200ms", elapsed)
	}

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	wantOutcomes(t, d.Send(cancelled, []*deliver.Event{event("web", "track", 2)}), deliver.Retry)
}

func TestCloseTwice(t *testing.T) {
	d, err := New(t.Context(), deliver.Config{ID: "test", Settings: map[string]any{"url": "redis://" + closedPort(t) + "/0", "stream": "e"}})
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
		t.Errorf("Send after Close: reason %q, error %q; want a closed-client error", r[0].Reason, r[0].Error)
	}
}
