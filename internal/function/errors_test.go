package function

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestErrorClasses: what each thrown error means, as Segment's outcome
// table says (spec §9), thrown from sync and async handlers of every kind.
func TestErrorClasses(t *testing.T) {
	r := newRunner(t)
	for _, tc := range []struct {
		name   string
		throw  string // a statement
		status Status
		class  string
		msg    string
	}{
		{"EventNotSupported", `throw new EventNotSupported('no pages')`, Discard, "EventNotSupported", "no pages"},
		{"InvalidEventPayload", `throw new InvalidEventPayload('Company name is required')`, Discard, "InvalidEventPayload", "Company name is required"},
		{"ValidationError", `throw new ValidationError('Page name is required')`, Discard, "ValidationError", "Page name is required"},
		{"InvalidSettings", `throw new InvalidSettings('apiKey is missing')`, Discard, "InvalidSettings", "apiKey is missing"},
		{"RetryError", `throw new RetryError('HTTP Status 503')`, Retry, "RetryError", "HTTP Status 503"},
		{"DropEvent", `throw new DropEvent('filtered')`, Drop, "DropEvent", "filtered"},
		{"a subclass of RetryError", `class RateLimited extends RetryError { constructor(s) { super('retry in ' + s + 's') } } throw new RateLimited(30)`, Retry, "RetryError", "retry in 30s"},
		{"a subclass of ValidationError", `class BadEmail extends ValidationError {} throw new BadEmail('no @')`, Discard, "ValidationError", "no @"},
		{"an error renamed", `const err = new Error('x'); err.name = 'RetryError'; throw err`, Retry, "RetryError", "x"},
		{"an object named like one", `throw { name: 'RetryError', message: 'plain object' }`, Retry, "RetryError", "plain object"},
		{"Error", `throw new Error('boom')`, Discard, "Error", "boom"},
		{"TypeError", `null.x`, Discard, "TypeError", "Cannot read property"},
		{"ReferenceError", `notDefined()`, Discard, "ReferenceError", "notDefined is not defined"},
		{"RangeError", `new Array(-1)`, Discard, "RangeError", "Invalid array length"},
		{"a custom Error subclass", `class MyError extends Error { constructor(m) { super(m); this.name = 'MyError' } } throw new MyError('mine')`, Discard, "MyError", "mine"},
		{"a thrown string", `throw 'just a string'`, Discard, "Error", "just a string"},
		{"a thrown number", `throw 42`, Discard, "Error", "42"},
		{"a thrown null", `throw null`, Discard, "Error", "the function threw"},
		{"a thrown undefined", `throw undefined`, Discard, "Error", "the function threw"},
		{"a rejected promise", `return Promise.reject(new RetryError('rejected'))`, Retry, "RetryError", "rejected"},
		{"a promise rejected with a string", `return Promise.reject('nope')`, Discard, "Error", "nope"},
		{"a rejection after a timer", `return new Promise((_, reject) => setTimeout(() => reject(new ValidationError('late')), 10))`, Discard, "ValidationError", "late"},
		{"an error thrown in a timer", `return new Promise(() => setTimeout(() => { throw new InvalidSettings('in timer') }, 1))`, Discard, "InvalidSettings", "in timer"},
		{"a promise that never settles", `return new Promise(() => {})`, Discard, "Error", "never settles"},
		{"an error caught and handled", `try { throw new RetryError('x') } catch (e) { console.log('caught', e.name) }`, OK, "", ""},
		{"an error with a proxy for a message", `throw new Proxy(new Error('p'), {})`, Discard, "Error", "p"},
	} {
		for _, kind := range []Kind{KindDestination, KindInsert, KindSource} {
			for _, async := range []string{"async ", ""} {
				t.Run(tc.name+"/"+string(kind)+"/"+async+"function", func(t *testing.T) {
					var out Outcome
					ret := ""
					if kind == KindInsert {
						ret = "\nreturn e"
					}
					switch kind {
					case KindSource:
						p := compile(t, KindSource, async+"function onRequest(e) {\n"+tc.throw+ret+"\n}")
						out = r.OnRequest(context.Background(), p, Request{Method: "POST", URL: "https://h.example.com/"}).Outcome
					case KindDestination:
						p := compile(t, kind, async+"function onTrack(e) {\n"+tc.throw+ret+"\n}")
						out = r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
					case KindInsert:
						p := compile(t, kind, async+"function onTrack(e) {\n"+tc.throw+ret+"\n}")
						out = r.Insert(context.Background(), p, track("E", nil)).Outcome
					}
					wantOutcome(t, out, tc.status, tc.class)
					if !strings.Contains(out.Message, tc.msg) {
						t.Errorf("message %q, want %q in it", out.Message, tc.msg)
					}
				})
			}
		}
	}
}

func TestOutcomeErr(t *testing.T) {
	for _, tc := range []struct {
		o    Outcome
		want string
	}{
		{Outcome{Status: OK}, ""},
		{Outcome{Status: Retry, Class: "RetryError", Message: "later"}, "RetryError: later"},
		{Outcome{Status: Drop, Class: "DropEvent"}, "DropEvent"},
	} {
		err := tc.o.Err()
		if (err == nil) != (tc.want == "") || (err != nil && err.Error() != tc.want) {
			t.Errorf("%+v.Err() = %v, want %q", tc.o, err, tc.want)
		}
	}
	for s, want := range map[Status]string{OK: "ok", Retry: "retry", Discard: "discard", Drop: "drop", 0: "status(0)", 9: "status(9)"} {
		if s.String() != want {
			t.Errorf("Status(%d) = %q, want %q", s, s.String(), want)
		}
	}
}

func TestTimeout(t *testing.T) {
	r := newRunner(t)
	for _, tc := range []struct{ name, code string }{
		{"an infinite loop", `for (;;) {}`},
		{"an infinite loop in an async handler after await", `await null; while (true) { Math.random() }`},
		{"a loop catching everything", `for (;;) { try { for (;;) {} } catch (e) {} }`},
		{"a timer later than the limit", `await new Promise((resolve) => setTimeout(resolve, 60000))`},
		{"timers forever", `await new Promise(() => { const tick = () => setTimeout(tick, 1); tick() })`},
		{"an interval never cleared", `await new Promise(() => setInterval(() => {}, 0))`},
		{"a recursive promise chain", `const spin = () => Promise.resolve().then(spin); await spin()`},
		{"a finally that loops", `try { throw new Error() } finally { for (;;) {} }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, KindDestination, "async function onTrack(e) {\n"+tc.code+"\n}", withTimeout(100*time.Millisecond))
			start := time.Now()
			out := r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
			d := time.Since(start)
			wantOutcome(t, out, Retry, ClassTimeout)
			if out.Message != "the function did not finish within 100ms" {
				t.Errorf("message %q", out.Message)
			}
			if d < 100*time.Millisecond || d > time.Second {
				t.Errorf("the call took %s, its limit is 100ms", d)
			}
		})
	}
}

// TestCallerContext: a caller that gives up (its context ends) stops the
// call; it retries later.
func TestCallerContext(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindDestination, "async function onTrack(e) { for (;;) {} }", withTimeout(10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	out := r.Deliver(ctx, p, []EventIn{track("E", nil)}).Outcomes[0]
	wantOutcome(t, out, Retry, ClassTimeout)
	if d := time.Since(start); d > time.Second {
		t.Errorf("the call went on %s after its caller gave up", d)
	}
	// A caller already gone: the calls do not start.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	events := make([]EventIn, 100)
	for i := range events {
		events[i] = track("E", nil)
	}
	start = time.Now()
	for _, out := range r.Deliver(done, p, events).Outcomes {
		wantOutcome(t, out, Retry, ClassTimeout)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("100 calls for a caller already gone took %s", d)
	}
}

func TestMemoryLimit(t *testing.T) {
	r := newRunner(t, func(o *Options) { o.MemoryLimit = 32 << 20 })
	for _, tc := range []struct{ name, code string }{
		{"an array growing without bound", `const a = []; for (;;) a.push('xxxxxxxxxxxxxxxxxxxxxxxx' + a.length)`},
		{"an object growing without bound", `const o = {}; for (let i = 0; ; i++) o['k' + i] = { i }`},
		{"a string doubling", `let s = 'x'; for (;;) s += s + 'y'`},
		{"arrays of arrays", `const a = []; for (;;) a.push(new Array(1000).fill(1))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, KindDestination, "async function onTrack(e) {\n"+tc.code+"\n}", withTimeout(30*time.Second))
			start := time.Now()
			out := r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
			wantOutcome(t, out, Discard, ClassMemoryLimit)
			t.Logf("stopped after %s", time.Since(start))
		})
	}
	// The interpreter that broke its limit is not used again; the next
	// call of the program runs.
	p := compile(t, KindDestination, `const a = []; async function onTrack(e) { if (e.event === 'grow') for (;;) a.push('x' + a.length) }`, withTimeout(30*time.Second))
	wantOutcome(t, r.Deliver(context.Background(), p, []EventIn{track("grow", nil)}).Outcomes[0], Discard, ClassMemoryLimit)
	wantOutcome(t, r.Deliver(context.Background(), p, []EventIn{track("small", nil)}).Outcomes[0], OK, "")
}

var sink []byte

// TestMemoryLimitIgnoresGarbage: the limit counts what a call keeps, not
// the garbage the process makes meanwhile. It counted the heap's objects,
// dead or alive: with a large live heap, the heap swings between
// collections by more than the limit, and calls that allocated nothing
// were stopped and discarded.
func TestMemoryLimitIgnoresGarbage(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MiB")
	}
	ballast := make([]byte, 96<<20) // the process's live heap
	for i := range ballast {
		ballast[i] = 1
	}
	runtime.GC()
	r := newRunner(t, func(o *Options) { o.MemoryLimit = 32 << 20 })
	p := compile(t, KindDestination, `async function onTrack(e) { await new Promise((resolve) => setTimeout(resolve, 300)) }`)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // garbage, 1 MiB a millisecond: ten times the limit during the call
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			sink = make([]byte, 1<<20)
		}
	}()
	out := r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
	close(stop)
	<-done
	runtime.KeepAlive(ballast)
	wantOutcome(t, out, OK, "")
}

func TestAllocationGuards(t *testing.T) {
	r := newRunner(t)
	for _, tc := range []struct{ name, code, class string }{
		{"repeat", `'x'.repeat(1e12)`, "RangeError"},
		{"repeat of a long string", `'abcdefgh'.repeat(1e7)`, "RangeError"},
		{"padStart", `''.padStart(1e12)`, "RangeError"},
		{"padEnd", `'a'.padEnd(2 ** 40, 'b')`, "RangeError"},
		{"fill of a huge array", `new Array(1e9).fill(0)`, "RangeError"},
		{"join of a huge array", `new Array(1e9).join('ab')`, "RangeError"},
		{"an ArrayBuffer", `new ArrayBuffer(1e12)`, "RangeError"},
		{"a typed array", `new Uint8Array(1e10)`, "RangeError"},
		{"a Float64Array", `new Float64Array(2 ** 31)`, "RangeError"},
		{"Array of a bad length", `new Array(2 ** 32)`, "RangeError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, KindDestination, "async function onTrack(e) {\n"+tc.code+"\n}")
			start := time.Now()
			out := r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
			wantOutcome(t, out, Discard, tc.class)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	// Below the bounds they work.
	if got := eval(t, r, `return 'ab'.repeat(3) + '-'.padStart(3, '.') + new Array(3).fill(7).join('') + new Uint8Array(4).length`); got != `"ababab..-7774"` {
		t.Errorf("got %s", got)
	}
}

func TestRecursionLimit(t *testing.T) {
	r := newRunner(t)
	for _, tc := range []struct{ name, code string }{
		{"plain recursion", `function f(n) { return f(n + 1) + 1 } f(0)`},
		{"async recursion", `async function f(n) { return await f(n + 1) } await f(0)`},
		{"through a native", `function f() { return [1].map(f) } f()`},
		{"through toString", `const o = { toString() { return String(o) } }; String(o)`},
		{"through a getter", `const o = { get x() { return this.x } }; o.x`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, KindDestination, "async function onTrack(e) {\n"+tc.code+"\n}")
			out := r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
			wantOutcome(t, out, Discard, "RangeError")
			if !strings.Contains(out.Message, "Maximum call stack size exceeded") {
				t.Errorf("message %q", out.Message)
			}
		})
	}
	// Deep but bounded recursion is fine.
	if got := eval(t, r, `function f(n) { return n === 0 ? 0 : 1 + f(n - 1) } return f(1000)`); got != "1000" {
		t.Errorf("got %s", got)
	}
}

// TestSyncHandlerReturningObjectWithThrowingGetter: the runtime read a
// handler's result with Export to see whether it is a promise, which runs
// getters: a getter that threw was a Go panic that ended the process.
func TestSyncHandlerReturningObjectWithThrowingGetter(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindDestination, `function onTrack(e) { return { get x() { throw new Error('getter') } } }`)
	out := r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
	wantOutcome(t, out, OK, "")
	src := compile(t, KindSource, `function onRequest() { return { get x() { throw new Error('getter') } } }`)
	res := r.OnRequest(context.Background(), src, Request{Method: "GET", URL: "https://h.example.com/", Headers: http.Header{}})
	wantOutcome(t, res.Outcome, OK, "")
}

// TestHostileValues: values whose reading runs code (getters, proxy traps,
// toString) and that throw or never end, where the runtime reads them from
// Go: a handler's result, a thrown value, a batch's statuses, the handlers
// themselves. Each was a Go panic that ended the process, or a call that
// never ended; each is now an outcome.
func TestHostileValues(t *testing.T) {
	r := newRunner(t)
	for _, tc := range []struct {
		name   string
		kind   Kind
		code   string
		status Status
		class  string
	}{
		{"a batch status getter that throws", KindDestination, `async function onBatch() { return [{ get status() { throw new Error('getter') } }] }`, Discard, "Error"},
		{"a batch result that is a revoked proxy", KindDestination, `async function onBatch() { const p = Proxy.revocable([], {}); p.revoke(); return p.proxy }`, Discard, "TypeError"},
		{"a batch result whose get trap throws", KindDestination, `async function onBatch() { return new Proxy([], { get() { throw new RetryError('trap') } }) }`, Retry, "RetryError"},
		{"a batch status getter that loops", KindDestination, `async function onBatch() { return [{ get status() { for (;;) {} } }] }`, Retry, ClassTimeout},
		{"an insert result that is a revoked proxy", KindInsert, `async function onTrack() { const p = Proxy.revocable({}, {}); p.revoke(); return p.proxy }`, Discard, "TypeError"},
		{"a thrown object whose message getter loops", KindInsert, `async function onTrack() { throw { get message() { for (;;) {} } } }`, Retry, ClassTimeout},
		{"a thrown proxy whose traps loop", KindInsert, `async function onTrack() { throw new Proxy({}, { get() { for (;;) {} }, getPrototypeOf() { for (;;) {} } }) }`, Retry, ClassTimeout},
		{"a thrown object whose message getter throws", KindInsert, `async function onTrack() { return Promise.reject({ get message() { throw 2 } }) }`, Discard, "Error"},
		{"a thrown object whose toString throws", KindInsert, `async function onTrack() { throw { toString() { throw 1 } } }`, Discard, "Error"},
		{"a thrown object without a prototype", KindInsert, `async function onTrack() { throw Object.create(null) }`, Discard, "Error"},
		{"a thrown symbol", KindInsert, `async function onTrack() { throw Symbol('s') }`, Discard, "Error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, tc.kind, tc.code, withTimeout(100*time.Millisecond))
			start := time.Now()
			var out Outcome
			if tc.kind == KindDestination {
				out = r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
			} else {
				out = r.Insert(context.Background(), p, track("E", nil)).Outcome
			}
			wantOutcome(t, out, tc.status, tc.class)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	// A handler behind a getter that throws once an earlier call says so.
	p := compile(t, KindInsert, `let broken = false
function onTrack(e) { broken = true; return e }
Object.defineProperty(globalThis, 'onIdentify', { get() { if (broken) throw new Error('g'); return (e) => e } })`)
	wantOutcome(t, r.Insert(context.Background(), p, event("identify", nil)).Outcome, OK, "")
	wantOutcome(t, r.Insert(context.Background(), p, track("E", nil)).Outcome, OK, "")
	wantOutcome(t, r.Insert(context.Background(), p, event("identify", nil)).Outcome, Discard, ClassNoHandler)
	for _, code := range []string{
		"throw {toString() { throw new Error('x') }}\nfunction onTrack(e) { return e }",
		"Object.defineProperty(globalThis, 'onTrack', {get() { throw new Error('g') }})",
	} {
		if _, err := Compile(Spec{ID: "hostile", Kind: KindInsert, Code: code}); err == nil {
			t.Errorf("Compile(%q) succeeded", code)
		}
	}
}
