package function

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// compile compiles code as a function of kind, failing the test if it
// does not compile.
func compile(t testing.TB, kind Kind, code string, opts ...func(*Spec)) *Program {
	t.Helper()
	s := Spec{ID: strings.ReplaceAll(t.Name(), "/", "_"), Kind: kind, Code: code}
	for _, o := range opts {
		o(&s)
	}
	p, err := Compile(s)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func withID(id string) func(*Spec)              { return func(s *Spec) { s.ID = id } }
func withSettings(m map[string]any) func(*Spec) { return func(s *Spec) { s.Settings = m } }
func withHosts(h ...string) func(*Spec)         { return func(s *Spec) { s.AllowedHosts = h } }
func withTimeout(d time.Duration) func(*Spec)   { return func(s *Spec) { s.Timeout = d } }

// testdata reads a file of testdata/.
func testdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newRunner is a runner closed when the test ends.
func newRunner(t testing.TB, opts ...func(*Options)) *Runner {
	t.Helper()
	var o Options
	for _, f := range opts {
		f(&o)
	}
	r := NewRunner(o)
	t.Cleanup(r.Close)
	return r
}

// track is a track event's JSON with the given properties.
func track(event string, props map[string]any) EventIn {
	b, err := json.Marshal(map[string]any{
		"type": "track", "event": event, "userId": "u1", "messageId": "m1",
		"timestamp": "2026-03-14T09:26:53.589Z", "properties": props,
	})
	if err != nil {
		panic(err)
	}
	return EventIn{Type: "track", JSON: b}
}

// event is an event of type typ with fields.
func event(typ string, fields map[string]any) EventIn {
	m := map[string]any{"type": typ, "messageId": "m1"}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return EventIn{Type: typ, JSON: b}
}

// insertOne runs insert function code on ev.
func insertOne(t testing.TB, code string, ev EventIn, opts ...func(*Spec)) InsertResult {
	t.Helper()
	return newRunner(t).Insert(context.Background(), compile(t, KindInsert, code, opts...), ev)
}

// eval runs body as the body of an async onTrack of an insert function
// that returns what body returns as the event's properties.result, and
// returns that result as JSON; the test fails when the call does not
// succeed.
func eval(t testing.TB, r *Runner, body string) string {
	t.Helper()
	p := compile(t, KindInsert, "async function onTrack(event, settings) {\n  event.properties.result = await (async () => {\n"+body+"\n  })()\n  return event\n}")
	res := r.Insert(context.Background(), p, track("E", map[string]any{}))
	if res.Status != OK {
		t.Fatalf("%s\n=> %v (logs %q)", body, res.Outcome.Err(), res.Logs)
	}
	var ev struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(res.JSON, &ev); err != nil {
		t.Fatalf("the result is not JSON: %v: %s", err, res.JSON)
	}
	return string(ev.Properties["result"])
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t testing.TB, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

func wantJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	if !jsonEqual(t, string(got), want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func wantOutcome(t testing.TB, got Outcome, status Status, class string) {
	t.Helper()
	if got.Status != status || got.Class != class {
		t.Errorf("outcome %v %s (%q), want %v %s", got.Status, got.Class, got.Message, status, class)
	}
}
