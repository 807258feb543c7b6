package function

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// propN reads properties.n of an insert function's result.
func propN(t *testing.T, res InsertResult) any {
	t.Helper()
	if res.Status != OK {
		t.Fatalf("%v", res.Outcome.Err())
	}
	var ev struct{ Properties map[string]any }
	if err := json.Unmarshal(res.JSON, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Properties["n"]
}

// TestIsolationFromALoopingFunction: a function that loops until its time
// limit does not hold up another program's calls.
func TestIsolationFromALoopingFunction(t *testing.T) {
	r := newRunner(t)
	hog := compile(t, KindDestination, `async function onTrack() { for (;;) {} }`, withID("hog"), withTimeout(time.Minute))
	fast := compile(t, KindInsert, `async function onTrack(e) { e.properties.n = 1; return e }`, withID("fast"))
	hogCtx, stopHogs := context.WithCancel(context.Background())
	defer stopHogs()
	hogDone := make(chan Outcome, 2)
	for range 2 { // as many as this machine may have cores
		go func() { hogDone <- r.Deliver(hogCtx, hog, []EventIn{track("E", nil)}).Outcomes[0] }()
	}
	time.Sleep(50 * time.Millisecond) // the hogs are looping
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if res := r.Insert(context.Background(), fast, track("E", map[string]any{})); res.Status != OK {
					errs <- res.Outcome.Err().Error()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("100 calls of another program took %s while two calls looped", d)
	}
	select {
	case o := <-hogDone:
		t.Fatalf("a looping call ended before it was stopped: %+v", o)
	default:
	}
	stopHogs()
	for range 2 {
		wantOutcome(t, <-hogDone, Retry, ClassTimeout)
	}
}

// TestInterpreterReuse: a program's interpreters keep their globals from
// call to call (Segment's functions cache tokens so), each program has its
// own, and an interpreter whose call timed out is not used again.
func TestInterpreterReuse(t *testing.T) {
	r := newRunner(t)
	const code = `
let n = 0
const loadedAt = crypto.randomUUID()
async function onTrack(e) {
  n++
  e.properties.n = n
  e.properties.loadedAt = loadedAt
  if (e.event === 'hang') for (;;) {}
  if (e.event === 'fail') throw new ValidationError('no')
  return e
}`
	a := compile(t, KindInsert, code, withID("a"), withTimeout(100*time.Millisecond))
	b := compile(t, KindInsert, code, withID("b"), withSettings(map[string]any{"other": true}), withTimeout(100*time.Millisecond))
	ev := track("E", map[string]any{})
	for i := 1; i <= 3; i++ {
		if n := propN(t, r.Insert(context.Background(), a, ev)); n != float64(i) {
			t.Fatalf("call %d of a saw n = %v", i, n)
		}
	}
	if n := propN(t, r.Insert(context.Background(), b, ev)); n != 1.0 {
		t.Fatalf("b shares a's globals: n = %v", n)
	}
	wantOutcome(t, r.Insert(context.Background(), a, track("fail", map[string]any{})).Outcome, Discard, "ValidationError")
	if n := propN(t, r.Insert(context.Background(), a, ev)); n != 5.0 {
		t.Fatalf("after an error the interpreter is kept: n = %v, want 5", n)
	}
	wantOutcome(t, r.Insert(context.Background(), a, track("hang", map[string]any{})).Outcome, Retry, ClassTimeout)
	if n := propN(t, r.Insert(context.Background(), a, ev)); n != 1.0 {
		t.Fatalf("after a timeout the interpreter was used again: n = %v, want 1 (a fresh one)", n)
	}
	if n := propN(t, r.Insert(context.Background(), b, ev)); n != 2.0 {
		t.Fatalf("b's interpreter: n = %v, want 2", n)
	}
}

// TestConcurrentCallsOfOneProgram: calls at once of one program each have
// an interpreter; none sees another's state mid-call.
func TestConcurrentCallsOfOneProgram(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindInsert, `
let current = null
async function onTrack(e) {
  current = e.messageId
  await new Promise((resolve) => setTimeout(resolve, 20))
  if (current !== e.messageId) throw new Error('another call changed my global')
  e.properties.n = current
  return e
}`)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := event("track", map[string]any{"messageId": fmt.Sprint("m", i), "properties": map[string]any{}})
			if n := propN(t, r.Insert(context.Background(), p, ev)); n != fmt.Sprint("m", i) {
				t.Errorf("call %d: %v", i, n)
			}
		}()
	}
	wg.Wait()
}

func TestSettingsAreFreshEachCall(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindInsert, `async function onTrack(e, settings) {
  e.properties.n = settings.apiKey + ' ' + settings.nested.list.length
  delete settings.apiKey
  settings.nested.list.push(1)
  return e
}`, withSettings(map[string]any{"apiKey": "k1", "nested": map[string]any{"list": []any{}}}))
	for range 3 {
		if n := propN(t, r.Insert(context.Background(), p, track("E", map[string]any{}))); n != "k1 0" {
			t.Fatalf("settings changed by an earlier call: %v", n)
		}
	}
}

// TestSloppyMode: the code runs as Node runs a script, not in strict mode.
func TestSloppyMode(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindInsert, `function onTrack(e) {
  total = 0 // undeclared: a global, as in Node
  for (i = 0; i < 3; i++) total += i
  e.properties.n = total + (typeof this)
  return e
}`)
	if n := propN(t, r.Insert(context.Background(), p, track("E", map[string]any{}))); n != "3object" && n != "3undefined" {
		t.Fatalf("n = %v", n)
	}
	strict := compile(t, KindInsert, `'use strict'
function onTrack(e) { undeclared = 1; return e }`)
	wantOutcome(t, r.Insert(context.Background(), strict, track("E", map[string]any{})).Outcome, Discard, "ReferenceError")
}

func TestClose(t *testing.T) {
	r := NewRunner(Options{})
	p := compile(t, KindDestination, `async function onTrack() { for (;;) {} }`, withTimeout(10*time.Second))
	done := make(chan Outcome)
	go func() { done <- r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0] }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	r.Close()
	r.Close() // twice is fine
	select {
	case o := <-done:
		wantOutcome(t, o, Retry, ClassTimeout)
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not stop the running call")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %s", d)
	}
	o := r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
	if o.Status != Retry || !strings.Contains(o.Message, "closed") {
		t.Errorf("a call after Close: %+v", o)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newRunner(t, func(o *Options) { o.Metrics = NewMetrics(reg) })
	p := compile(t, KindDestination, `async function onTrack(e) { if (e.event === 'retry') throw new RetryError('x') }`, withID("fn_m"))
	r.Deliver(context.Background(), p, []EventIn{track("ok", nil), track("ok", nil), track("retry", nil), event("page", nil)})
	want := `
# HELP conflux_function_calls_total Function calls, by function, kind and outcome (ok, retry, discard, drop) and error class.
# TYPE conflux_function_calls_total counter
conflux_function_calls_total{class="",function="fn_m",kind="destination",status="ok"} 2
conflux_function_calls_total{class="RetryError",function="fn_m",kind="destination",status="retry"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "conflux_function_calls_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "conflux_function_call_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
}

func TestLogRingKeepsTheLast100(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindDestination, `async function onTrack(e) { console.log(e.event) }`)
	for i := range 130 {
		r.Deliver(context.Background(), p, []EventIn{track(fmt.Sprint(i), nil)})
	}
	entries := r.Logs(p.ID())
	if len(entries) != 100 || entries[0].Text != "129\n" || entries[99].Text != "30\n" {
		t.Fatalf("%d entries, first %q, last %q", len(entries), entries[0].Text, entries[len(entries)-1].Text)
	}
	if entries[0].Status != "ok" || entries[0].Time.IsZero() {
		t.Errorf("entry %+v", entries[0])
	}
	if len(r.Logs("no-such-function")) != 0 {
		t.Error("logs of a function never run")
	}
}

// TestCloseClosesIdleConnections: fetch's keep-alive connections end with
// the runner (they stayed open, two goroutines each, until the transport's
// idle timeout).
func TestCloseClosesIdleConnections(t *testing.T) {
	var mu sync.Mutex
	states := map[http.ConnState]int{}
	api := newFakeAPI(t, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			mu.Lock()
			states[s]++
			mu.Unlock()
		}
	})
	r := NewRunner(Options{})
	p := compile(t, KindDestination, `async function onTrack(e, s) { await fetch(s.url) }`, withSettings(map[string]any{"url": api.URL}), withHosts(api.host()))
	wantOutcome(t, r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0], OK, "")
	r.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		closed := states[http.StateClosed]
		mu.Unlock()
		if closed == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection is still open after Close: %v", states)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
