package sdk_test

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	analytics "github.com/segmentio/analytics-go/v3"
)

// uuidRE matches the lower-case UUIDs analytics-go generates as messageId.
var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// callback records what analytics-go reports per message. It is called
// from the client's goroutines.
type callback struct {
	mu        sync.Mutex
	successes []analytics.Message
	failures  []error
}

func (c *callback) Success(m analytics.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.successes = append(c.successes, m)
}

func (c *callback) Failure(_ analytics.Message, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures = append(c.failures, err)
}

// testLogger sends analytics-go's log to the test's.
type testLogger struct{ t *testing.T }

func (l testLogger) Logf(format string, args ...any) {
	l.t.Logf("analytics-go: "+format, args...)
}

func (l testLogger) Errorf(format string, args ...any) {
	l.t.Logf("analytics-go error: "+format, args...)
}

// messageID returns the messageId analytics-go filled in.
func messageID(m analytics.Message) string {
	switch m := m.(type) {
	case analytics.Identify:
		return m.MessageId
	case analytics.Track:
		return m.MessageId
	case analytics.Page:
		return m.MessageId
	case analytics.Screen:
		return m.MessageId
	case analytics.Group:
		return m.MessageId
	case analytics.Alias:
		return m.MessageId
	}
	return fmt.Sprintf("<%T>", m)
}

// goCase is one message sent through analytics-go and what the log must hold.
type goCase struct {
	name string
	msg  analytics.Message

	typ string
	// ids are the identifying fields: userId, anonymousId, groupId,
	// previousId, event, name. They also find the case's record.
	ids map[string]string
	// messageID set by the caller; "" means analytics-go generated a UUID.
	messageID string
	// payloadKey is "traits" or "properties" ("" for none), payload its value.
	payloadKey string
	payload    any
	// orig is the Timestamp set on the message; zero means analytics-go's now.
	orig time.Time
	// context is the event's own context, before the batch's is merged in.
	context map[string]any
	// integrations sent; nil means none (and none may appear).
	integrations map[string]any
	// ip the server must write to context.ip; "" means none.
	ip string
}

func TestAnalyticsGo(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	identifyTS := time.Date(2024, 3, 1, 12, 0, 0, 123456789, cet)
	trackTS := time.Date(2024, 2, 29, 23, 59, 59, 999_000_000, time.UTC)
	groupTS := time.Date(2023, 12, 31, 8, 30, 0, 0, time.UTC)

	identifyTraits := analytics.NewTraits().
		SetEmail("grace@example.com").
		SetName("Grace Hopper").
		Set("nickname", "Zoë <Amazing> & \u2028 🚀"). // analytics-go escapes <, >, & and U+2028
		Set("age", 85).
		Set("address", map[string]any{"city": "Arlington", "geo": map[string]any{"lat": 38.88, "lng": -77.1}})
	trackProps := analytics.NewProperties().
		SetRevenue(19.99).
		SetCurrency("USD").
		Set("products", []any{map[string]any{"sku": "a-1", "qty": 2}, map[string]any{"sku": "b-2", "qty": 1}}).
		Set("tags", []string{"x", "y"})
	trackIntegrations := analytics.NewIntegrations().
		EnableAll().Disable("Mixpanel").Set("Amplitude", map[string]any{"sessionId": 1234})
	pageProps := analytics.NewProperties().SetURL("https://example.com/docs").SetTitle("Docs").Set("section", "start")
	pageContext := &analytics.Context{
		Locale: "en-GB",
		Traits: analytics.NewTraits().Set("plan", "pro"),
		Extra:  map[string]any{"custom": map[string]any{"a": 1}},
	}
	groupTraits := analytics.NewTraits().SetName("Initech").Set("employees", 250).Set("industry", "Software")

	cases := []goCase{
		{
			name: "identify",
			msg:  analytics.Identify{UserId: "go-user-1", Traits: identifyTraits, Timestamp: identifyTS},
			typ:  "identify", ids: map[string]string{"userId": "go-user-1"},
			payloadKey: "traits", payload: identifyTraits, orig: identifyTS,
		},
		{
			name: "track",
			msg: analytics.Track{UserId: "go-user-1", Event: "Order Completed", MessageId: "go-custom-message-id-1",
				Properties: trackProps, Integrations: trackIntegrations, Timestamp: trackTS},
			typ: "track", ids: map[string]string{"userId": "go-user-1", "event": "Order Completed"},
			messageID: "go-custom-message-id-1", payloadKey: "properties", payload: trackProps, orig: trackTS,
			integrations: map[string]any{"all": true, "Mixpanel": false, "Amplitude": map[string]any{"sessionId": 1234}},
		},
		{
			name: "page",
			msg:  analytics.Page{AnonymousId: "go-anon-1", Name: "Getting Started", Properties: pageProps, Context: pageContext},
			typ:  "page", ids: map[string]string{"anonymousId": "go-anon-1", "name": "Getting Started"},
			payloadKey: "properties", payload: pageProps,
			context: map[string]any{"locale": "en-GB", "traits": map[string]any{"plan": "pro"}, "custom": map[string]any{"a": 1}},
		},
		{
			name: "screen",
			msg:  analytics.Screen{UserId: "go-user-1", Name: "Home", Properties: analytics.NewProperties().Set("variant", "b")},
			typ:  "screen", ids: map[string]string{"userId": "go-user-1", "name": "Home"},
			payloadKey: "properties", payload: map[string]any{"variant": "b"},
		},
		{
			name: "group",
			msg:  analytics.Group{UserId: "go-user-1", GroupId: "go-group-1", Traits: groupTraits, Timestamp: groupTS},
			typ:  "group", ids: map[string]string{"userId": "go-user-1", "groupId": "go-group-1"},
			payloadKey: "traits", payload: groupTraits, orig: groupTS,
		},
		{
			name: "alias",
			msg:  analytics.Alias{UserId: "go-user-1", PreviousId: "go-anon-1"},
			typ:  "alias", ids: map[string]string{"userId": "go-user-1", "previousId": "go-anon-1"},
		},
		{
			// A server library that sets context.direct asks for the caller's
			// address (spec §1.10).
			name: "track with context.direct",
			msg:  analytics.Track{UserId: "go-user-1", Event: "Direct Call", Context: &analytics.Context{Direct: true}},
			typ:  "track", ids: map[string]string{"userId": "go-user-1", "event": "Direct Call"},
			context: map[string]any{"direct": true}, ip: "127.0.0.1",
		},
	}

	srv := servertest.Start(t, server.Options{})
	cb := &callback{}
	w := window{start: time.Now()}
	client, err := analytics.NewWithConfig(srv.WriteKey, analytics.Config{
		Endpoint: srv.URL, BatchSize: 10, Interval: 50 * time.Millisecond,
		Callback: cb, Logger: testLogger{t},
		Transport: delayTransport{delay: netDelay, next: http.DefaultTransport},
		// Sent once per batch; the server merges it into every event.
		DefaultContext: &analytics.Context{
			App:   analytics.AppInfo{Name: "conflux-sdk-test", Version: "1.2.3"},
			Extra: map[string]any{"deployment": "test"},
		},
	})
	if err != nil {
		t.Fatalf("analytics.NewWithConfig: %v", err)
	}
	for _, c := range cases {
		if err := client.Enqueue(c.msg); err != nil {
			t.Fatalf("Enqueue(%s): %v", c.name, err)
		}
	}
	if err := client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	w.end = time.Now()

	cb.mu.Lock()
	if len(cb.failures) > 0 {
		t.Errorf("analytics-go reported %d failures, first: %v", len(cb.failures), cb.failures[0])
	}
	sentIDs := map[string]bool{}
	for _, m := range cb.successes {
		sentIDs[messageID(m)] = true
	}
	cb.mu.Unlock()
	if len(sentIDs) != len(cases) {
		t.Fatalf("analytics-go reported %d distinct messages sent, want %d", len(sentIDs), len(cases))
	}

	recs := readLog(t, srv)
	if len(recs) != len(cases) {
		t.Fatalf("log holds %d records, want %d", len(recs), len(cases))
	}
	byID := byMessageID(t, recs)
	for id := range byID {
		if !sentIDs[id] {
			t.Errorf("log holds messageId %q, which analytics-go did not report sending", id)
		}
	}

	batchContext := map[string]any{
		"library":    map[string]any{"name": "analytics-go", "version": analytics.Version},
		"app":        map[string]any{"name": "conflux-sdk-test", "version": "1.2.3"},
		"deployment": "test",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := findRecord(t, recs, c.typ, c.ids)
			if r.SourceID != srv.SourceID {
				t.Errorf("source id = %q, want %q", r.SourceID, srv.SourceID)
			}
			keys := []string{"type", "messageId", "context", "originalTimestamp", "sentAt", "timestamp", "receivedAt"}
			for k := range c.ids {
				keys = append(keys, k)
			}
			if c.payloadKey != "" {
				keys = append(keys, c.payloadKey)
				checkEqualJSON(t, r, c.payloadKey, c.payload)
			}
			if c.integrations != nil {
				keys = append(keys, "integrations")
				checkEqualJSON(t, r, "integrations", c.integrations)
			}
			checkKeys(t, r, keys)

			id, _ := r.Fields["messageId"].(string)
			switch {
			case c.messageID != "" && id != c.messageID:
				t.Errorf("messageId = %q, want the caller's %q", id, c.messageID)
			case c.messageID == "" && !uuidRE.MatchString(id):
				t.Errorf("messageId = %q, want analytics-go's UUID", id)
			}

			wantCtx := maps.Clone(batchContext)
			for k, v := range c.context {
				wantCtx[k] = v
			}
			if c.ip != "" {
				wantCtx["ip"] = c.ip
			}
			checkEqualJSON(t, r, "context", wantCtx)
			checkTimes(t, r, w, wantTimes{orig: c.orig})
			checkLatency(t, r, netDelay)
		})
	}
}

// findRecord returns the one record of type typ whose fields equal ids.
func findRecord(t *testing.T, recs []logged, typ string, ids map[string]string) logged {
	t.Helper()
	var found []logged
	for _, r := range recs {
		if r.Fields["type"] != typ {
			continue
		}
		match := true
		for k, v := range ids {
			if r.Fields[k] != v {
				match = false
			}
		}
		if match {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		var all []string
		for _, r := range recs {
			all = append(all, r.Raw)
		}
		t.Fatalf("%d records of type %q with %v, want 1; log:\n%s", len(found), typ, ids, strings.Join(all, "\n"))
	}
	return found[0]
}

// TestAnalyticsGoWrongWriteKey: the server refuses an unknown write key,
// analytics-go reports every message through Callback.Failure, and nothing
// reaches the log.
func TestAnalyticsGoWrongWriteKey(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	cb := &callback{}
	client, err := analytics.NewWithConfig("not-a-write-key", analytics.Config{
		Endpoint: srv.URL, BatchSize: 10, Interval: 50 * time.Millisecond,
		Callback: cb, Logger: testLogger{t},
		RetryAfter: func(int) time.Duration { return 5 * time.Millisecond },
	})
	if err != nil {
		t.Fatalf("analytics.NewWithConfig: %v", err)
	}
	msgs := []analytics.Message{
		analytics.Track{UserId: "u1", Event: "Refused"},
		analytics.Identify{UserId: "u1", Traits: analytics.NewTraits().SetEmail("u1@example.com")},
	}
	for _, m := range msgs {
		if err := client.Enqueue(m); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if err := client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	cb.mu.Lock()
	failures, successes := cb.failures, cb.successes
	cb.mu.Unlock()
	if len(successes) != 0 {
		t.Errorf("analytics-go reported %d messages sent with a wrong write key, want 0", len(successes))
	}
	if len(failures) != len(msgs) {
		t.Fatalf("Callback.Failure called %d times, want %d (one per message)", len(failures), len(msgs))
	}
	for _, err := range failures {
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("Failure error = %v, want the server's 401", err)
		}
	}
	if recs := readLog(t, srv); len(recs) != 0 {
		t.Errorf("log holds %d records after a wrong write key, want 0; first: %s", len(recs), recs[0].Raw)
	}
}
