package alert

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a settable clock, safe for the evaluator's goroutines.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// request is one request the webhook received.
type request struct {
	header http.Header
	body   Notification
	raw    string
}

// webhook is a notification receiver that records what it gets and
// answers each request with the next scripted status (200 once the
// script runs out).
type webhook struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	script   []int
	received []request // every request
	accepted []request // those answered 2xx
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{t: t}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/hook" {
			t.Errorf("webhook: unexpected %s %s", r.Method, r.URL.Path)
			rw.WriteHeader(http.StatusNotFound)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		var n Notification
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&n); err != nil {
			t.Errorf("webhook: body %s: %v", raw, err)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		status := http.StatusOK
		if len(w.script) > 0 {
			status, w.script = w.script[0], w.script[1:]
		}
		req := request{header: r.Header.Clone(), body: n, raw: string(raw)}
		w.received = append(w.received, req)
		if status < 300 {
			w.accepted = append(w.accepted, req)
		}
		rw.WriteHeader(status)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) url() string { return w.srv.URL + "/hook" }

// fail makes the next requests answer these statuses.
func (w *webhook) fail(statuses ...int) {
	w.mu.Lock()
	w.script = append(w.script, statuses...)
	w.mu.Unlock()
}

// take returns the accepted notifications since the last take.
func (w *webhook) take() []request {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.accepted
	w.accepted = nil
	return out
}

func (w *webhook) requests() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.received)
}

// fixture is a workspace with a source, two destinations and a webhook,
// and an evaluator over it with a controllable clock.
type fixture struct {
	db    *store.DB
	repo  *config.Repo
	mgr   *config.Manager
	clock *clock
	hook  *webhook
	e     *Evaluator
}

// t0 is the fixture clock's start: 30 s into a minute.
var t0 = time.Date(2026, 12, 1, 10, 10, 30, 0, time.UTC)

func newFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	f := &fixture{db: db, repo: config.NewRepo(db), clock: &clock{now: t0}, hook: newWebhook(t)}
	for _, s := range []string{"web", "ios"} {
		if _, err := f.repo.CreateSource(t.Context(), config.Source{ID: s}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"hook", "other"} {
		if _, err := f.repo.CreateDestination(t.Context(), config.Destination{ID: d, Type: "webhook", Enabled: true, Sources: []string{"web", "ios"}}); err != nil {
			t.Fatal(err)
		}
	}
	f.mgr = config.NewManager(f.repo, config.Settings{}, nil)
	if err := f.mgr.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.e = f.evaluator(t)
	return f
}

// evaluator returns a new evaluator on the fixture's store, as a
// restarted process or another node would have.
func (f *fixture) evaluator(t *testing.T) *Evaluator {
	return New(f.db, f.mgr.Current, Options{Now: f.clock.Now, Backoff: time.Millisecond, Logger: storetest.Logger(t)})
}

// rule creates an alert rule through the repository and makes it live.
func (f *fixture) rule(t *testing.T, a config.Alert) {
	t.Helper()
	a.Enabled = true
	if a.Notify.URL == "" {
		a.Notify = config.AlertNotify{URL: f.hook.url(), Headers: map[string]string{"Authorization": "Bearer alert-token"}}
	}
	if _, err := f.repo.CreateAlert(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := f.mgr.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// count adds n events with outcome to the minute bucket holding at,
// straight into delivery_metrics, as the recorder's flush does (with the
// roll-up row across destinations).
func (f *fixture) count(t *testing.T, at time.Time, source, destination, outcome, reason string, n int64) {
	t.Helper()
	dests := []string{destination}
	if destination != "" {
		dests = append(dests, observe.AllDestinations)
	}
	for _, d := range dests {
		_, err := f.db.SQL().ExecContext(t.Context(), f.db.Rebind(`
INSERT INTO delivery_metrics (granularity, destination_id, source_id, bucket, event_type, event_name, outcome, reason, count)
VALUES (?, ?, ?, ?, 'track', 'Order Completed', ?, ?, ?)
ON CONFLICT (granularity, destination_id, source_id, bucket, event_type, event_name, outcome, reason)
DO UPDATE SET count = delivery_metrics.count + excluded.count`),
			observe.Minute, d, source, at.Truncate(time.Minute).UnixMilli(), outcome, reason, n)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// evaluate runs one evaluation at time at.
func (f *fixture) evaluate(t *testing.T, at time.Time) {
	t.Helper()
	f.clock.Set(at)
	if err := f.e.Evaluate(t.Context()); err != nil {
		t.Fatalf("Evaluate at %s: %v", at.Format(time.TimeOnly), err)
	}
}

// wantNotifications checks that the webhook accepted exactly these
// transitions since the last check, with their values: each rule's in
// order (different rules' are sent in parallel, so in any order).
func (f *fixture) wantNotifications(t *testing.T, want ...Notification) []request {
	t.Helper()
	got := f.hook.take()
	slices.SortStableFunc(got, func(a, b request) int { return strings.Compare(a.body.AlertID, b.body.AlertID) })
	slices.SortStableFunc(want, func(a, b Notification) int { return strings.Compare(a.AlertID, b.AlertID) })
	if len(got) != len(want) {
		bodies := make([]string, len(got))
		for i, r := range got {
			bodies[i] = r.raw
		}
		t.Fatalf("webhook got %d notifications %v, want %d", len(got), bodies, len(want))
	}
	for i, w := range want {
		g := got[i].body
		if g.AlertID != w.AlertID || g.Status != w.Status || !g.At.Equal(w.At) || !g.StartedAt.Equal(w.StartedAt) || !sameValue(g.Value, w.Value) {
			t.Errorf("notification %d = %s\nwant %+v (value %v)", i, got[i].raw, w, deref(w.Value))
		}
	}
	return got
}

func sameValue(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return math.Abs(*a-*b) < 1e-9
}

func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}

func val(v float64) *float64 { return &v }

func (f *fixture) state(t *testing.T, id string) (config.AlertState, bool) {
	t.Helper()
	states, err := f.e.AlertStates(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st, ok := states[id]
	return st, ok
}

// TestSuccessRateBelow counts through the real recorder: too few events
// do not fire, a low rate fires once (not again on the next evaluation,
// nor after a restart), and the rule resolves once the window moves past
// the failures.
func TestSuccessRateBelow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.rule(t, config.Alert{ID: "hook-rate", Name: "Hook success rate", Destination: "hook", Kind: config.SuccessRateBelow,
			Threshold: 0.9, Window: config.Duration(5 * time.Minute)})
		rec := observe.NewRecorder(db, observe.Options{Now: f.clock.Now})
		add := func(dest, outcome string, n int64) {
			rec.Add(observe.Key{Source: "web", Destination: dest, EventType: "track", EventName: "Order Completed", Outcome: outcome, Reason: "http_500"}, n)
		}

		// 15 events reached an outcome, 5 of them discarded: a rate of
		// 2/3, but fewer than min_events (20).
		add("hook", observe.Delivered, 10)
		add("hook", observe.Discarded, 5)
		add("hook", observe.Retried, 50) // not a final outcome
		add("other", observe.Discarded, 100)
		if err := rec.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.evaluate(t, t0)
		f.wantNotifications(t)
		if st, ok := f.state(t, "hook-rate"); !ok || st.State != config.AlertOK || st.LastValue != nil || !st.Since.Equal(t0) {
			t.Errorf("state with too few events = %+v", st)
		}

		// 10 more discards a minute later: 10 of 25 delivered.
		f.clock.Set(t0.Add(time.Minute))
		add("hook", observe.Discarded, 8)
		add("hook", observe.Expired, 2)
		if err := rec.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		firedAt := t0.Add(time.Minute + 10*time.Second)
		f.evaluate(t, firedAt)
		got := f.wantNotifications(t, Notification{AlertID: "hook-rate", Status: Firing, Value: val(0.4), StartedAt: firedAt, At: firedAt})
		b := got[0].body
		if b.Name != "Hook success rate" || b.Kind != config.SuccessRateBelow || b.Destination != "hook" || b.Source != "" ||
			b.Threshold != 0.9 || b.Window.String() != "5m" {
			t.Errorf("notification = %s", got[0].raw)
		}
		h := got[0].header
		if h.Get("Authorization") != "Bearer alert-token" || h.Get("Content-Type") != "application/json" || h.Get("Idempotency-Key") == "" {
			t.Errorf("notification headers = %v", h)
		}
		for _, key := range []string{"alert_id", "name", "status", "kind", "destination", "source", "value", "threshold", "window", "started_at", "at"} {
			if !strings.Contains(got[0].raw, `"`+key+`":`) {
				t.Errorf("notification lacks %q: %s", key, got[0].raw)
			}
		}

		// Still low: no second notification, nor from a restarted
		// evaluator.
		f.evaluate(t, firedAt.Add(30*time.Second))
		f.e = f.evaluator(t)
		f.evaluate(t, firedAt.Add(time.Minute))
		f.wantNotifications(t)
		st, _ := f.state(t, "hook-rate")
		if st.State != config.AlertFiring || !st.Since.Equal(firedAt) || !sameValue(st.LastValue, val(0.4)) || !st.EvaluatedAt.Equal(firedAt.Add(time.Minute)) {
			t.Errorf("firing state = %+v", st)
		}

		// Five minutes on, the failures are out of the window: nothing to
		// measure, so it resolves.
		resolvedAt := t0.Add(6 * time.Minute)
		f.evaluate(t, resolvedAt)
		f.wantNotifications(t, Notification{AlertID: "hook-rate", Status: Resolved, Value: nil, StartedAt: firedAt, At: resolvedAt})

		// The history, newest first, each sent once.
		events, err := f.e.Events(t.Context(), "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 2 || events[0].Status != Resolved || events[1].Status != Firing {
			t.Fatalf("events = %+v", events)
		}
		for _, ev := range events {
			if ev.Delivery.Status != "sent" || ev.Delivery.Attempts != 1 || ev.Delivery.SentAt == nil || ev.AlertID != "hook-rate" {
				t.Errorf("event %d = %+v", ev.ID, ev)
			}
		}
	})
}

// TestDiscardsChange is the example users ask for: a spike in refused
// events over five minutes fires, and resolves once it is over.
func TestDiscardsChange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.rule(t, config.Alert{ID: "spike", Kind: config.DiscardsChange, Threshold: 100, Window: config.Duration(5 * time.Minute), MinEvents: 5})

		// A steady 2 discards a minute, on two destinations, from 10:00 on.
		for m := range 11 {
			at := t0.Truncate(time.Hour).Add(time.Duration(m) * time.Minute)
			f.count(t, at, "web", "hook", observe.Discarded, "http_400", 1)
			f.count(t, at, "ios", "other", observe.Discarded, "http_422", 1)
			f.count(t, at, "web", "hook", observe.Delivered, "", 50)
		}
		// At 10:10:30 the last window is 10:06–10:10 and the one before
		// it 10:01–10:05: 10 each.
		f.evaluate(t, t0)
		f.wantNotifications(t)
		if st, _ := f.state(t, "spike"); !sameValue(st.LastValue, val(0)) {
			t.Errorf("steady state = %+v", st)
		}

		// 3 more: 30% up but fewer than min_events.
		f.count(t, t0, "web", "hook", observe.Discarded, "http_400", 3)
		f.evaluate(t, t0.Add(5*time.Second))
		f.wantNotifications(t)

		// A spike: 27 more this minute, 40 against 10.
		f.count(t, t0, "web", "hook", observe.Discarded, "http_400", 27)
		at := t0.Add(10 * time.Second)
		f.evaluate(t, at)
		f.wantNotifications(t, Notification{AlertID: "spike", Status: Firing, Value: val(300), StartedAt: at, At: at})

		// While the spike is in the last window it keeps firing, quietly.
		f.evaluate(t, t0.Add(3*time.Minute))
		f.wantNotifications(t)

		// Once it is in the window before, the discards fell: resolved.
		end := t0.Add(6 * time.Minute)
		f.evaluate(t, end)
		got := f.wantNotifications(t, Notification{AlertID: "spike", Status: Resolved, Value: val(-100), StartedAt: at, At: end})
		if got[0].body.Destination != "" || got[0].body.Source != "" || got[0].body.Window.String() != "5m" {
			t.Errorf("resolved = %s", got[0].raw)
		}
		f.evaluate(t, end.Add(time.Minute))
		f.wantNotifications(t)
	})
}

// TestDiscardsAbove checks the rule's scope: only its destination and
// source count, and more than the threshold fires.
func TestDiscardsAbove(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.rule(t, config.Alert{ID: "web-hook", Destination: "hook", Source: "web", Kind: config.DiscardsAbove, Threshold: 5, Window: config.Duration(2 * time.Minute)})
		f.rule(t, config.Alert{ID: "any", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(time.Minute)})
		f.count(t, t0, "ios", "hook", observe.Discarded, "http_400", 100)
		f.count(t, t0, "web", "other", observe.Discarded, "http_400", 100)
		f.count(t, t0.Add(-time.Minute), "web", "hook", observe.Discarded, "http_400", 3)
		f.count(t, t0, "web", "hook", observe.Discarded, "http_413", 2)
		f.count(t, t0, "web", "", observe.Rejected, "too_large", 100) // before delivery: not a destination's
		f.evaluate(t, t0)
		// "any" (every destination, this minute) fires; web→hook has 5,
		// not more than 5.
		f.wantNotifications(t, Notification{AlertID: "any", Status: Firing, Value: val(202), StartedAt: t0, At: t0})
		if st, _ := f.state(t, "web-hook"); st.State != config.AlertOK || !sameValue(st.LastValue, val(5)) {
			t.Errorf("web-hook = %+v", st)
		}
		f.count(t, t0, "web", "hook", observe.Discarded, "http_400", 1)
		f.evaluate(t, t0.Add(time.Second))
		f.wantNotifications(t, Notification{AlertID: "web-hook", Status: Firing, Value: val(6), StartedAt: t0.Add(time.Second), At: t0.Add(time.Second)})
	})
}

// TestNotificationRetries: a webhook that fails gets the notification at
// the next evaluation; transitions that happen meanwhile follow in order;
// each is accepted once, with the same idempotency key on every attempt.
func TestNotificationRetries(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.rule(t, config.Alert{ID: "any", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(time.Minute)})
		f.count(t, t0, "web", "hook", observe.Discarded, "http_400", 1)

		f.hook.fail(503, 500, 429) // every attempt of one evaluation
		f.evaluate(t, t0)
		f.wantNotifications(t)
		if n := f.hook.requests(); n != 3 {
			t.Errorf("%d requests, want 3 attempts", n)
		}
		events, _ := f.e.Events(t.Context(), "any", 5)
		if len(events) != 1 || events[0].Delivery.Status != "pending" || events[0].Delivery.Attempts != 3 ||
			!strings.Contains(events[0].Delivery.LastError, "429") || strings.Contains(events[0].Delivery.LastError, f.hook.url()) {
			t.Fatalf("events after a failed send = %+v", events)
		}

		// A 4xx is not retried within the evaluation. Meanwhile the rule
		// resolves: both wait, in order.
		f.hook.fail(400)
		resolvedAt := t0.Add(time.Minute)
		f.evaluate(t, resolvedAt)
		f.wantNotifications(t)
		if n := f.hook.requests(); n != 4 {
			t.Errorf("%d requests, want 4", n)
		}

		f.evaluate(t, resolvedAt.Add(30*time.Second))
		got := f.wantNotifications(t,
			Notification{AlertID: "any", Status: Firing, Value: val(1), StartedAt: t0, At: t0},
			Notification{AlertID: "any", Status: Resolved, Value: val(0), StartedAt: t0, At: resolvedAt},
		)
		if got[0].header.Get("Idempotency-Key") == got[1].header.Get("Idempotency-Key") {
			t.Errorf("two events with one idempotency key %q", got[0].header.Get("Idempotency-Key"))
		}
		f.evaluate(t, resolvedAt.Add(time.Minute))
		f.wantNotifications(t)
		events, _ = f.e.Events(t.Context(), "any", 5)
		if len(events) != 2 || events[1].Delivery.Attempts != 5 || events[1].Delivery.Status != "sent" || events[1].Delivery.LastError != "" {
			t.Errorf("events = %+v", events)
		}
	})
}

// TestNotificationGiveUp: a notification not sent within GiveUpAfter is
// abandoned, and the next transition is still sent.
func TestNotificationGiveUp(t *testing.T) {
	db := storetest.SQLite(t)
	f := newFixture(t, db)
	f.e = New(db, f.mgr.Current, Options{Now: f.clock.Now, Attempts: 1, GiveUpAfter: time.Hour})
	f.rule(t, config.Alert{ID: "any", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(time.Minute)})
	f.count(t, t0, "web", "hook", observe.Discarded, "http_400", 1)
	f.hook.fail(500, 500)
	f.evaluate(t, t0)
	f.evaluate(t, t0.Add(10*time.Second))
	f.wantNotifications(t)
	// An hour on it resolves; the firing notification is abandoned and the
	// resolved one sent.
	end := t0.Add(61 * time.Minute)
	f.evaluate(t, end)
	f.wantNotifications(t, Notification{AlertID: "any", Status: Resolved, Value: val(0), StartedAt: t0, At: end})
	events, _ := f.e.Events(t.Context(), "", 5)
	if len(events) != 2 || events[1].Delivery.Status != "failed" || !strings.Contains(events[1].Delivery.LastError, "not sent within 1h") {
		t.Errorf("events = %+v", events)
	}
}

// TestDisabledAndDeleted: a firing rule that is disabled resolves; a
// deleted rule's state goes and its pending notification is abandoned.
func TestDisabledAndDeleted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.rule(t, config.Alert{ID: "a", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(time.Minute)})
		f.rule(t, config.Alert{ID: "b", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(time.Minute)})
		f.count(t, t0, "web", "hook", observe.Discarded, "http_400", 4)
		f.evaluate(t, t0)
		f.wantNotifications(t,
			Notification{AlertID: "a", Status: Firing, Value: val(4), StartedAt: t0, At: t0},
			Notification{AlertID: "b", Status: Firing, Value: val(4), StartedAt: t0, At: t0},
		)

		a, _ := f.repo.GetAlert(t.Context(), "a")
		a.Enabled = false
		if _, err := f.repo.UpdateAlert(t.Context(), a); err != nil {
			t.Fatal(err)
		}
		if err := f.mgr.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(10 * time.Second)
		f.evaluate(t, at)
		// a resolves with its last value, even with discards still there.
		f.wantNotifications(t, Notification{AlertID: "a", Status: Resolved, Value: val(4), StartedAt: t0, At: at})
		f.evaluate(t, at.Add(time.Second))
		f.wantNotifications(t)
		if st, _ := f.state(t, "a"); st.State != config.AlertOK {
			t.Errorf("disabled a = %+v", st)
		}

		// b has a pending notification when it is deleted.
		bb, _ := f.repo.GetAlert(t.Context(), "b")
		bb.Threshold = 100
		if _, err := f.repo.UpdateAlert(t.Context(), bb); err != nil {
			t.Fatal(err)
		}
		if err := f.mgr.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.hook.fail(500, 500, 500)
		f.evaluate(t, at.Add(2*time.Second)) // b resolves; its notification fails
		if err := f.repo.DeleteAlert(t.Context(), "b"); err != nil {
			t.Fatal(err)
		}
		if err := f.mgr.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.evaluate(t, at.Add(3*time.Second))
		f.wantNotifications(t)
		if _, ok := f.state(t, "b"); ok {
			t.Error("a deleted rule kept its state")
		}
		events, _ := f.e.Events(t.Context(), "b", 5)
		if len(events) != 2 || events[0].Status != Resolved || events[0].Delivery.Status != "failed" ||
			events[0].Delivery.LastError != "the alert rule was deleted" {
			t.Errorf("b's events = %+v", events)
		}
	})
}

// TestTwoNodes: two evaluators sharing a store record one transition and
// send it once.
func TestTwoNodes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.rule(t, config.Alert{ID: "any", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(time.Minute)})
		f.count(t, t0, "web", "hook", observe.Discarded, "http_400", 1)
		nodes := []*Evaluator{f.e, f.evaluator(t), f.evaluator(t)}
		var wg sync.WaitGroup
		for _, e := range nodes {
			wg.Go(func() {
				if err := e.Evaluate(t.Context()); err != nil {
					t.Errorf("Evaluate: %v", err)
				}
			})
		}
		wg.Wait()
		if got := f.hook.take(); len(got) != 1 {
			t.Errorf("webhook got %d notifications, want 1", len(got))
		}
		if events, _ := f.e.Events(t.Context(), "", 10); len(events) != 1 {
			t.Errorf("events = %+v", events)
		}
	})
}

// TestRun evaluates on a timer with the real clock until ctx ends.
func TestRun(t *testing.T) {
	db := storetest.SQLite(t)
	f := newFixture(t, db)
	// Two minutes, so that the count stays in the window if the minute
	// turns.
	f.rule(t, config.Alert{ID: "any", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(2 * time.Minute)})
	f.count(t, time.Now(), "web", "hook", observe.Discarded, "http_400", 1)
	e := New(db, f.mgr.Current, Options{Every: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	var got []request
	for len(got) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		got = f.hook.take()
	}
	time.Sleep(100 * time.Millisecond) // a few more evaluations
	got = append(got, f.hook.take()...)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if len(got) != 1 || got[0].body.Status != Firing {
		t.Errorf("webhook got %v, want one firing notification", got)
	}
}

// TestAPI serves the rules with their states through the Config API and
// the history through the evaluator's route.
func TestAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.rule(t, config.Alert{ID: "any", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(time.Minute)})
		f.rule(t, config.Alert{ID: "quiet", Kind: config.DiscardsAbove, Threshold: 0, Window: config.Duration(time.Minute)})
		f.count(t, t0, "web", "hook", observe.Discarded, "http_400", 2)
		f.evaluate(t, t0)
		f.hook.take()

		mux := http.NewServeMux()
		auth := func(h http.Handler) http.Handler { return httpapi.Bearer(func() string { return "tok" }, h) }
		api := config.NewAPI(f.repo, f.mgr)
		api.AlertStates = f.e
		api.Register(mux, auth)
		f.e.Register(mux, auth)
		get := func(path string) (int, map[string]any) {
			t.Helper()
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "Bearer tok")
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("GET %s: %s", path, rec.Body)
			}
			return rec.Code, out
		}

		// quiet fired too; delete its state to see how a rule never
		// evaluated is answered.
		if _, err := db.SQL().ExecContext(t.Context(), db.Rebind(`DELETE FROM alert_states WHERE alert_id = ?`), "quiet"); err != nil {
			t.Fatal(err)
		}
		code, body := get("/api/v1/alerts")
		list, _ := body["alerts"].([]any)
		if code != 200 || len(list) != 2 {
			t.Fatalf("GET /api/v1/alerts: %d %v", code, body)
		}
		a := list[0].(map[string]any)
		if a["id"] != "any" || a["state"] != "firing" || a["since"] != t0.Format(time.RFC3339) || a["last_value"] != 2.0 || a["kind"] != "discards_above" {
			t.Errorf("any = %v", a)
		}
		if q := list[1].(map[string]any); q["state"] != "ok" || q["since"] != nil || q["last_value"] != nil {
			t.Errorf("never evaluated = %v", q)
		}
		if code, one := get("/api/v1/alerts/any"); code != 200 || one["state"] != "firing" {
			t.Errorf("GET /api/v1/alerts/any: %d %v", code, one)
		}

		code, body = get("/api/v1/alerts/events?alert=any&limit=1")
		events, _ := body["events"].([]any)
		if code != 200 || len(events) != 1 {
			t.Fatalf("events: %d %v", code, body)
		}
		ev := events[0].(map[string]any)
		n, _ := ev["notification"].(map[string]any)
		if ev["alert_id"] != "any" || ev["status"] != "firing" || ev["value"] != 2.0 || n["status"] != "sent" || n["attempts"] != 1.0 {
			t.Errorf("event = %v", ev)
		}
		if _, b := get("/api/v1/alerts/events"); len(b["events"].([]any)) != 2 {
			t.Errorf("all events = %v", b)
		}
		if _, b := get("/api/v1/alerts/events?alert=nope"); len(b["events"].([]any)) != 0 {
			t.Errorf("events of an unknown rule = %v", b)
		}
		for q, want := range map[string]string{"limit=0": "from 1 to 1000", "limit=x": "from 1 to 1000", "limit=1001": "from 1 to 1000", "since=1": "unknown parameter"} {
			if code, b := get("/api/v1/alerts/events?" + q); code != 400 || !strings.Contains(b["error"].(map[string]any)["message"].(string), want) {
				t.Errorf("%s: %d %v, want 400 naming %q", q, code, b, want)
			}
		}
	})
}

// TestSuccessRateHoldsDuringAnOutage checks that a firing success-rate
// alert does not resolve when the destination is so far down that every
// event awaits retry (no final outcome to measure), and resolves when the
// traffic is gone altogether.
func TestSuccessRateHoldsDuringAnOutage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.rule(t, config.Alert{ID: "rate", Name: "rate", Destination: "hook", Kind: config.SuccessRateBelow,
			Threshold: 0.9, Window: config.Duration(5 * time.Minute), MinEvents: 5})
		f.count(t, t0, "web", "hook", observe.Discarded, "http_500", 10)
		f.evaluate(t, t0)
		f.wantNotifications(t, Notification{AlertID: "rate", Status: Firing, Value: val(0), StartedAt: t0, At: t0})
		// Six minutes on, only retries in the window: still firing.
		later := t0.Add(6 * time.Minute)
		f.count(t, later, "web", "hook", observe.Retried, "attempt.1", 40)
		f.evaluate(t, later)
		f.wantNotifications(t)
		if st, _ := f.state(t, "rate"); st.State != config.AlertFiring {
			t.Errorf("during the outage the state is %+v, want firing", st)
		}
		// Twelve minutes on, no events at all: resolved.
		quiet := t0.Add(12 * time.Minute)
		f.evaluate(t, quiet)
		f.wantNotifications(t, Notification{AlertID: "rate", Status: Resolved, Value: nil, StartedAt: t0, At: quiet})
	})
}
