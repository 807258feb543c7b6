package sdk_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	"github.com/confluxcdp/conflux/internal/testenv"
)

// nodeDir is the npm project that drives @segment/analytics-node.
const nodeDir = "node"

var npmCI struct {
	sync.Mutex
	done bool
}

// requireNode returns the node project's directory with its dependencies
// installed: it skips the test when node or npm is not on PATH (fails
// with CONFLUX_REQUIRE_SERVICES=1) and runs `npm ci` when node_modules is
// missing, so a clean clone needs no manual step.
func requireNode(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, tool+" is not on PATH: install Node.js 20+ and npm to run the @segment/analytics-node tests")
		}
	}
	dir, err := filepath.Abs(nodeDir)
	if err != nil {
		t.Fatal(err)
	}
	npmCI.Lock()
	defer npmCI.Unlock()
	if npmCI.done {
		return dir
	}
	pkg := filepath.Join(dir, "node_modules", "@segment", "analytics-node", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		t.Logf("%s is missing: running npm ci in %s", pkg, dir)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	npmCI.done = true
	return dir
}

// nodeReport is the line send.mjs prints.
type nodeReport struct {
	Requests []struct {
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Body    struct {
			Batch    []map[string]any `json:"batch"`
			WriteKey string           `json:"writeKey"`
			SentAt   string           `json:"sentAt"`
		} `json:"body"`
	} `json:"requests"`
	Responses []struct {
		Status int    `json:"status"`
		URL    string `json:"url"`
	} `json:"responses"`
	Errors []struct {
		Code      string `json:"code"`
		Reason    string `json:"reason"`
		MessageID string `json:"messageId"`
	} `json:"errors"`
}

// runSend runs send.mjs against url with writeKey, each request delayed
// by delay after analytics-node stamps sentAt, and returns its report.
func runSend(t *testing.T, dir, url, writeKey string, delay time.Duration) nodeReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "send.mjs", url, writeKey)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SEND_DELAY_MS="+strconv.FormatInt(delay.Milliseconds(), 10))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node send.mjs: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("node send.mjs stderr:\n%s", stderr.String())
	}
	var last string
	for sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes())); sc.Scan(); {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	var rep nodeReport
	if err := json.Unmarshal([]byte(last), &rep); err != nil {
		t.Fatalf("send.mjs printed %q, want one JSON line: %v", stdout.String(), err)
	}
	return rep
}

// nodeMessageID matches the messageIds analytics-node generates.
var nodeMessageID = regexp.MustCompile(`^node-next-\d+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// nodeCase is one call send.mjs makes, as the log must hold it.
type nodeCase struct {
	name string
	typ  string
	ids  map[string]string
	// messageID set by the caller; "" means analytics-node generated one.
	messageID  string
	payloadKey string
	payload    any
	// orig is the timestamp passed to the call; zero means the library's now.
	orig time.Time
	// context passed to the call (library is added by analytics-node).
	context map[string]any
	// integrations as analytics-node sends them ({} when none are passed).
	integrations map[string]any
	// extra top-level fields analytics-node adds to this call.
	extra map[string]any
	ip    string
}

func TestAnalyticsNode(t *testing.T) {
	dir := requireNode(t)
	nodeVer := nodeVersion(t)

	// The values send.mjs sends.
	cases := []nodeCase{
		{
			name: "identify", typ: "identify", ids: map[string]string{"userId": "node-user-1"},
			payloadKey: "traits", payload: map[string]any{
				"email": "ada@example.com", "name": "Ada", "age": 36, "nickname": "Zoë <Amazing> & \u2028 🚀",
				"address": map[string]any{"city": "London", "postalCode": "NW1", "geo": map[string]any{"lat": 51.5, "lng": -0.12}},
			},
			orig: time.Date(2024, 3, 1, 11, 0, 0, 250_000_000, time.UTC), // passed as "2024-03-01T12:00:00.250+01:00"
		},
		{
			name: "track", typ: "track", ids: map[string]string{"userId": "node-user-1", "event": "Order Completed"},
			messageID: "node-custom-message-id-1", payloadKey: "properties", payload: map[string]any{
				"revenue": 19.99, "currency": "EUR",
				"products": []any{map[string]any{"sku": "a-1", "qty": 2}, map[string]any{"sku": "b-2", "qty": 1}},
				"tags":     []any{"x", "y"},
			},
			integrations: map[string]any{"All": true, "Mixpanel": false, "Amplitude": map[string]any{"sessionId": 1234}},
		},
		{
			name: "page", typ: "page", ids: map[string]string{"anonymousId": "node-anon-1", "name": "Getting Started"},
			// analytics-node copies category into properties (spec §1.5).
			payloadKey: "properties", payload: map[string]any{"path": "/docs/start", "title": "Start here", "category": "Docs"},
			orig:    time.Date(2024, 2, 29, 23, 59, 59, 999_000_000, time.UTC),
			context: map[string]any{"locale": "en-GB", "traits": map[string]any{"plan": "pro"}, "custom": map[string]any{"a": 1}},
			extra:   map[string]any{"category": "Docs"},
		},
		{
			name: "screen", typ: "screen", ids: map[string]string{"userId": "node-user-1", "name": "Home"},
			payloadKey: "properties", payload: map[string]any{"variant": "b"},
		},
		{
			name: "group", typ: "group", ids: map[string]string{"userId": "node-user-1", "groupId": "node-group-1"},
			payloadKey: "traits", payload: map[string]any{"name": "Initech", "employees": 250, "industry": "Software"},
			orig: time.Date(2024, 1, 15, 8, 30, 0, 0, time.UTC),
		},
		{
			name: "alias", typ: "alias", ids: map[string]string{"userId": "node-user-1", "previousId": "node-anon-1"},
		},
		{
			name: "track with context.direct", typ: "track", ids: map[string]string{"userId": "node-user-1", "event": "Direct Call"},
			payloadKey: "properties", payload: map[string]any{},
			context: map[string]any{"direct": true}, ip: "127.0.0.1",
		},
	}

	srv := servertest.Start(t, server.Options{})
	w := window{start: time.Now()}
	rep := runSend(t, dir, srv.URL, srv.WriteKey, netDelay)
	w.end = time.Now()

	for _, e := range rep.Errors {
		t.Errorf("analytics-node emitted error %s: %s (messageId %s)", e.Code, e.Reason, e.MessageID)
	}
	if len(rep.Responses) != len(rep.Requests) || len(rep.Requests) == 0 {
		t.Errorf("send.mjs saw %d requests and %d responses, want as many, at least one", len(rep.Requests), len(rep.Responses))
	}
	for _, r := range rep.Responses {
		if r.Status != 200 {
			t.Errorf("%s answered %d, want 200", r.URL, r.Status)
		}
	}

	// What went over the wire, by messageId, with its batch's sentAt.
	type wireEvent struct {
		fields map[string]any
		sentAt time.Time
	}
	wire := map[string]wireEvent{}
	for _, req := range rep.Requests {
		if want := srv.URL + "/v1/batch"; req.URL != want {
			t.Errorf("analytics-node posted to %s, want %s", req.URL, want)
		}
		if req.Body.WriteKey != srv.WriteKey {
			t.Errorf("batch writeKey = %q, want %q", req.Body.WriteKey, srv.WriteKey)
		}
		sentAt, err := time.Parse(time.RFC3339Nano, req.Body.SentAt)
		if err != nil {
			t.Fatalf("batch sentAt %q: %v", req.Body.SentAt, err)
		}
		for _, ev := range req.Body.Batch {
			if _, ok := ev["sentAt"]; ok {
				t.Errorf("analytics-node sent a per-event sentAt (%v); the checks below assume only the batch's", ev["sentAt"])
			}
			id, _ := ev["messageId"].(string)
			wire[id] = wireEvent{fields: ev, sentAt: sentAt}
		}
	}
	if len(wire) != len(cases) {
		t.Fatalf("analytics-node sent %d distinct events, want %d", len(wire), len(cases))
	}

	recs := readLog(t, srv)
	if len(recs) != len(cases) {
		t.Fatalf("log holds %d records, want %d", len(recs), len(cases))
	}
	byMessageID(t, recs) // no duplicates

	library := map[string]any{"name": "@segment/analytics-node", "version": "3.1.0"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := findRecord(t, recs, c.typ, c.ids)
			if r.SourceID != srv.SourceID {
				t.Errorf("source id = %q, want %q", r.SourceID, srv.SourceID)
			}
			id, _ := r.Fields["messageId"].(string)
			switch {
			case c.messageID != "" && id != c.messageID:
				t.Errorf("messageId = %q, want the caller's %q", id, c.messageID)
			case c.messageID == "" && !nodeMessageID.MatchString(id):
				t.Errorf("messageId = %q, want analytics-node's node-next-<ms>-<uuid>", id)
			}
			sent, ok := wire[id]
			if !ok {
				t.Fatalf("messageId %q is in the log but analytics-node did not send it", id)
			}

			// Every field analytics-node sent arrives as sent, except those
			// the server rewrites: timestamp becomes originalTimestamp, and
			// context gains what the server adds (checked below).
			wantKeys := []string{"originalTimestamp", "sentAt", "timestamp", "receivedAt"}
			for k, v := range sent.fields {
				switch k {
				case "timestamp":
					continue
				case "context":
				default:
					checkEqualJSON(t, r, k, v)
				}
				wantKeys = append(wantKeys, k)
			}
			checkKeys(t, r, wantKeys)
			if _, ok := r.Fields["writeKey"]; ok {
				t.Errorf("writeKey is in the log: %s", r.Raw)
			}

			// The known values, independently of what send.mjs reports.
			if c.payloadKey != "" {
				checkEqualJSON(t, r, c.payloadKey, c.payload)
			}
			intg := c.integrations
			if intg == nil {
				intg = map[string]any{}
			}
			checkEqualJSON(t, r, "integrations", intg)
			for k, v := range c.extra {
				checkEqualJSON(t, r, k, v)
			}
			checkEqualJSON(t, r, "_metadata", map[string]any{"nodeVersion": nodeVer, "jsRuntime": "node"})
			wantCtx := map[string]any{"library": library}
			for k, v := range c.context {
				wantCtx[k] = v
			}
			if c.ip != "" {
				wantCtx["ip"] = c.ip
			}
			checkEqualJSON(t, r, "context", wantCtx)

			// analytics-node stamps every event with timestamp (the caller's
			// or its clock) and each batch with sentAt; the server keeps the
			// first as originalTimestamp and the batch's sentAt on each event.
			wt := wantTimes{orig: c.orig, sentAt: sent.sentAt}
			if c.orig.IsZero() {
				s, _ := sent.fields["timestamp"].(string)
				ts, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					t.Fatalf("analytics-node sent timestamp %#v: %v", sent.fields["timestamp"], err)
				}
				if !w.contains(ts) {
					t.Errorf("analytics-node's own timestamp %s is outside the test's window", ts)
				}
				wt.orig = ts
			}
			checkTimes(t, r, w, wt)
			checkLatency(t, r, netDelay)
		})
	}
}

// nodeVersion is what analytics-node reports as _metadata.nodeVersion.
func nodeVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "node", "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestAnalyticsNodeWrongWriteKey: the server answers 401 to an unknown
// write key, which analytics-node drops without retrying (spec §1.8) and
// reports as a delivery_failure 'error' per event; nothing reaches the log.
func TestAnalyticsNodeWrongWriteKey(t *testing.T) {
	dir := requireNode(t)
	srv := servertest.Start(t, server.Options{})
	rep := runSend(t, dir, srv.URL, "not-a-write-key", 0)

	if len(rep.Requests) == 0 {
		t.Fatal("analytics-node sent no request")
	}
	if len(rep.Responses) != len(rep.Requests) {
		t.Errorf("%d requests, %d responses", len(rep.Requests), len(rep.Responses))
	}
	events := 0
	for _, req := range rep.Requests {
		if n := req.Headers["X-Retry-Count"]; n != "" {
			t.Errorf("analytics-node retried (X-Retry-Count %s): the server's answer made it think the error transient", n)
		}
		events += len(req.Body.Batch)
	}
	for _, r := range rep.Responses {
		if r.Status != 401 {
			t.Errorf("status = %d, want 401", r.Status)
		}
	}
	if len(rep.Errors) != events || events == 0 {
		t.Errorf("analytics-node emitted %d errors for %d events, want one per event", len(rep.Errors), events)
	}
	for _, e := range rep.Errors {
		if e.Code != "delivery_failure" || !strings.Contains(e.Reason, "401") {
			t.Errorf("error = %s %q, want delivery_failure with the server's 401", e.Code, e.Reason)
		}
	}
	if recs := readLog(t, srv); len(recs) != 0 {
		t.Errorf("log holds %d records after a wrong write key, want 0; first: %s", len(recs), recs[0].Raw)
	}
}
