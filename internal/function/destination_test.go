package function

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is the API the destination functions of testdata/ send to: it
// records each request and answers what the test scripts.
type fakeAPI struct {
	*httptest.Server
	t      *testing.T
	mu     sync.Mutex
	reqs   []fakeRequest
	answer func(r fakeRequest) (int, string)
}

type fakeRequest struct {
	Method, Path string
	Header       http.Header
	Body         string
}

// newFakeAPI starts the fake; opts change its server before it starts
// (serving replaces the recording handler).
func newFakeAPI(t *testing.T, opts ...func(*http.Server)) *fakeAPI {
	f := &fakeAPI{t: t, answer: func(fakeRequest) (int, string) { return 200, `{"ok":true}` }}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fr := fakeRequest{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: string(b)}
		f.mu.Lock()
		f.reqs = append(f.reqs, fr)
		answer := f.answer
		f.mu.Unlock()
		code, body := answer(fr)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	for _, o := range opts {
		o(f.Config)
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func serving(h http.HandlerFunc) func(*http.Server) { return func(s *http.Server) { s.Handler = h } }

func (f *fakeAPI) host() string {
	u, _ := url.Parse(f.URL)
	return u.Host
}

func (f *fakeAPI) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs...)
}

func (f *fakeAPI) script(answer func(r fakeRequest) (int, string)) {
	f.mu.Lock()
	f.answer = answer
	f.mu.Unlock()
}

func basicAuth(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
}

func TestDestinationSendsEvents(t *testing.T) {
	api := newFakeAPI(t)
	r := newRunner(t)
	p := compile(t, KindDestination, testdata(t, "destination_api.js"),
		withSettings(map[string]any{"apiKey": "sk_live_42", "endpoint": api.URL + "/"}), withHosts(api.host()))
	api.script(func(r fakeRequest) (int, string) {
		if r.Method == "PUT" {
			return 200, `{"id":"usr_7"}`
		}
		return 202, `{"ok":true}`
	})

	res := r.Deliver(context.Background(), p, []EventIn{
		track("Order Completed", map[string]any{"total": 27.5, "currency": "USD"}),
		event("identify", map[string]any{"userId": "user 7", "traits": map[string]any{"email": "ana@example.com", "name": "Ana"}}),
		event("delete", map[string]any{"userId": "u9"}),
	})
	for i, o := range res.Outcomes {
		if o.Status != OK {
			t.Errorf("event %d: %v", i, o.Err())
		}
	}
	reqs := api.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	tr := reqs[0]
	if tr.Method != "POST" || tr.Path != "/v1/events" {
		t.Errorf("track: %s %s", tr.Method, tr.Path)
	}
	for k, want := range map[string]string{"Authorization": basicAuth("sk_live_42"), "Content-Type": "application/json", "X-Source": "conflux", "User-Agent": "Conflux-Functions/1"} {
		if got := tr.Header.Get(k); got != want {
			t.Errorf("track header %s: %q, want %q", k, got, want)
		}
	}
	wantJSON(t, []byte(tr.Body), `{"event_name":"Order Completed","user_id":"u1","event_properties":{"total":27.5,"currency":"USD"},"timestamp":"2026-03-14T09:26:53.589Z"}`)

	id := reqs[1]
	if id.Method != "PUT" || id.Path != "/v1/users/user%207" || id.Header.Get("Authorization") != basicAuth("sk_live_42") {
		t.Errorf("identify: %s %s %q", id.Method, id.Path, id.Header.Get("Authorization"))
	}
	wantJSON(t, []byte(id.Body), `{"email":"ana@example.com","name":"Ana"}`)
	if res.Logs != "user usr_7\n" {
		t.Errorf("logs %q", res.Logs)
	}
	if reqs[2].Path != "/v1/deletions" || reqs[2].Body != `{"user_id":"u9"}` {
		t.Errorf("delete: %s %s", reqs[2].Path, reqs[2].Body)
	}
}

func TestDestinationErrors(t *testing.T) {
	api := newFakeAPI(t)
	r := newRunner(t)
	p := compile(t, KindDestination, testdata(t, "destination_api.js"),
		withSettings(map[string]any{"apiKey": "k", "endpoint": api.URL}), withHosts(api.host()))
	ok := track("Signed Up", map[string]any{})
	for _, tc := range []struct {
		name   string
		answer int
		ev     EventIn
		status Status
		class  string
		msg    string
	}{
		{"200", 200, ok, OK, "", ""},
		{"500 retries", 500, ok, Retry, "RetryError", "HTTP Status 500"},
		{"503 retries", 503, ok, Retry, "RetryError", "HTTP Status 503"},
		{"429 retries", 429, ok, Retry, "RetryError", "HTTP Status 429"},
		{"400 is rejected", 400, ok, Discard, "ValidationError", `HTTP Status 400: {"error":"scripted"}`},
		{"no user", 200, event("track", map[string]any{"event": "E"}), Discard, "InvalidEventPayload", "userId or anonymousId is required"},
		{"identify without an email", 200, event("identify", map[string]any{"userId": "u", "traits": map[string]any{}}), Discard, "ValidationError", "a valid email is required"},
		{"identify with a bad email", 200, event("identify", map[string]any{"userId": "u", "traits": map[string]any{"email": "not an email"}}), Discard, "ValidationError", "a valid email is required"},
		{"identify answered 503", 503, event("identify", map[string]any{"userId": "u", "traits": map[string]any{"email": "a@b.c"}}), Retry, "RetryError", "HTTP Status 503"},
		{"group without company", 200, event("group", map[string]any{"groupId": "g", "traits": map[string]any{}}), Discard, "InvalidEventPayload", "Company name is required"},
		{"alias is not supported", 200, event("alias", map[string]any{"previousId": "a", "userId": "b"}), Discard, "EventNotSupported", "Alias event is not supported"},
		{"page has no handler", 200, event("page", map[string]any{"name": "Home"}), Discard, "EventNotSupported", "page is not supported"},
		{"screen has no handler", 200, event("screen", map[string]any{"name": "Home"}), Discard, "EventNotSupported", "screen is not supported"},
		{"an unknown type", 200, event("bogus", nil), Discard, "EventNotSupported", "bogus is not supported"},
		{"an event that is not JSON", 200, EventIn{Type: "track", JSON: []byte(`{"type":"track",`)}, Discard, "InvalidEventPayload", "the event is not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api.script(func(fakeRequest) (int, string) { return tc.answer, `{"error":"scripted"}` })
			res := r.Deliver(context.Background(), p, []EventIn{tc.ev})
			wantOutcome(t, res.Outcomes[0], tc.status, tc.class)
			if !strings.Contains(res.Outcomes[0].Message, tc.msg) {
				t.Errorf("message %q, want %q in it", res.Outcomes[0].Message, tc.msg)
			}
		})
	}
}

func TestDestinationConnectionErrorRetries(t *testing.T) {
	api := newFakeAPI(t)
	host := api.host()
	api.Close() // nothing listens there any more
	p := compile(t, KindDestination, testdata(t, "destination_api.js"),
		withSettings(map[string]any{"apiKey": "k", "endpoint": "http://" + host}), withHosts(host))
	res := newRunner(t).Deliver(context.Background(), p, []EventIn{track("E", nil)})
	wantOutcome(t, res.Outcomes[0], Retry, "RetryError")
	if !strings.Contains(res.Outcomes[0].Message, "connection refused") {
		t.Errorf("message %q", res.Outcomes[0].Message)
	}
	// Not caught, a failed fetch is a FetchError, which retries too.
	p = compile(t, KindDestination, `async function onTrack(e, s) { await fetch(s.url) }`, withSettings(map[string]any{"url": "http://" + host + "/x"}), withHosts(host))
	res = newRunner(t).Deliver(context.Background(), p, []EventIn{track("E", nil)})
	wantOutcome(t, res.Outcomes[0], Retry, "FetchError")
}

func TestDestinationBatch(t *testing.T) {
	api := newFakeAPI(t)
	r := newRunner(t)
	p := compile(t, KindDestination, testdata(t, "destination_batch.js"),
		withSettings(map[string]any{"endpoint": api.URL}), withHosts(api.host()))
	events := make([]EventIn, 6)
	for i := range events {
		events[i] = event("track", map[string]any{"event": "E", "messageId": string(rune('a' + i))})
	}
	// The API answers as in Segment's example: events 2, 4 and 5 fail.
	api.script(func(fakeRequest) (int, string) {
		return 200, `{"results":[{"ok":true},{"ok":false,"code":400,"error":"Bad Request"},{"ok":true},
			{"ok":false,"code":500,"error":"Error processing request"},{"ok":false,"code":429,"error":"slow down"},{"ok":true}]}`
	})
	res := r.Deliver(context.Background(), p, events)
	want := []Outcome{
		{Status: OK}, {Status: Discard, Class: "Status400", Message: "Bad Request"}, {Status: OK},
		{Status: Retry, Class: "Status500", Message: "Error processing request"}, {Status: Retry, Class: "Status429", Message: "slow down"}, {Status: OK},
	}
	for i := range want {
		if res.Outcomes[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, res.Outcomes[i], want[i])
		}
	}
	reqs := api.requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/batch" {
		t.Fatalf("requests %+v, want one to /v1/batch", reqs)
	}
	var body struct{ Events []struct{ ID string } }
	if err := json.Unmarshal([]byte(reqs[0].Body), &body); err != nil || len(body.Events) != 6 || body.Events[5].ID != "f" {
		t.Errorf("batch body %s (%v)", reqs[0].Body, err)
	}

	// A batch that throws: every event takes the error's outcome.
	api.script(func(fakeRequest) (int, string) { return 503, `` })
	res = r.Deliver(context.Background(), p, events[:3])
	for _, o := range res.Outcomes {
		wantOutcome(t, o, Retry, "RetryError")
	}
}

func TestDestinationBatchResults(t *testing.T) {
	r := newRunner(t)
	events := []EventIn{track("A", nil), track("B", nil), track("C", nil)}
	for _, tc := range []struct {
		name string
		ret  string
		want []Status
	}{
		{"nothing returned: all OK", `undefined`, []Status{OK, OK, OK}},
		{"a short list: the rest OK", `[{status: 500}]`, []Status{Retry, OK, OK}},
		{"not a list: all OK", `({status: 500})`, []Status{OK, OK, OK}},
		{"entries without status or not objects", `[{}, null, 7]`, []Status{OK, OK, OK}},
		{"2xx, 408, 404", `[{status: 204}, {status: 408}, {status: 404}]`, []Status{OK, Retry, Discard}},
		{"statuses as strings", `[{status: "200"}, {status: "503"}, {status: "422"}]`, []Status{OK, Retry, Discard}},
		{"a longer list", `[{status: 200}, {status: 200}, {status: 200}, {status: 500}]`, []Status{OK, OK, OK}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, KindDestination, `async function onBatch(events) { return `+tc.ret+` }`)
			res := r.Deliver(context.Background(), p, events)
			for i, o := range res.Outcomes {
				if o.Status != tc.want[i] {
					t.Errorf("event %d: %v, want %v", i, o.Status, tc.want[i])
				}
			}
		})
	}
}

// TestDestinationWithoutBatchHandlesEachEvent: events go one by one to
// their types' handlers, in order, and one event's failure does not stop
// the others.
func TestDestinationWithoutBatchHandlesEachEvent(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindDestination, `
const seen = []
async function onTrack(e) { seen.push(e.event); if (e.event === 'bad') throw new ValidationError('bad'); console.log(seen.join()) }
async function onPage(e) { seen.push('page:' + e.name); console.log(seen.join()) }`)
	res := r.Deliver(context.Background(), p, []EventIn{track("a", nil), track("bad", nil), event("page", map[string]any{"name": "Home"}), event("identify", nil), track("c", nil)})
	want := []Status{OK, Discard, OK, Discard, OK}
	for i, o := range res.Outcomes {
		if o.Status != want[i] {
			t.Errorf("event %d: %v, want %v", i, o.Err(), want[i])
		}
	}
	if res.Outcomes[3].Class != "EventNotSupported" {
		t.Errorf("identify: %+v", res.Outcomes[3])
	}
	if res.Logs != "a\na,bad,page:Home\na,bad,page:Home,c\n" {
		t.Errorf("logs %q", res.Logs)
	}
}

func TestFetchAllowList(t *testing.T) {
	api := newFakeAPI(t)
	_, port, _ := strings.Cut(api.host(), ":")
	r := newRunner(t)
	for _, tc := range []struct {
		name  string
		hosts []string
		url   string
		ok    bool
		msg   string
	}{
		{"the host and port allowed", []string{api.host()}, api.URL + "/a", true, ""},
		{"the host on any port", []string{"127.0.0.1"}, api.URL + "/a", true, ""},
		{"another host", []string{"api.example.com"}, api.URL + "/a", false, `host "127.0.0.1:` + port + `" is not in the function's allowed hosts`},
		{"another port", []string{"127.0.0.1:1"}, api.URL + "/a", false, "is not in the function's allowed hosts"},
		{"no hosts", nil, api.URL + "/a", false, "is not in the function's allowed hosts"},
		{"localhost by name is another host", []string{api.host()}, "http://localhost:" + port + "/a", false, "is not in the function's allowed hosts"},
		{"not http", []string{api.host()}, "file:///etc/passwd", false, "is not an absolute http(s) URL"},
		{"relative", []string{api.host()}, "/v1/events", false, "is not an absolute http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, KindDestination, `async function onTrack(e, s) { const r = await fetch(s.url); if (r.status !== 200) throw new Error('status ' + r.status) }`,
				withSettings(map[string]any{"url": tc.url}), withHosts(tc.hosts...))
			res := r.Deliver(context.Background(), p, []EventIn{track("E", nil)})
			if tc.ok {
				wantOutcome(t, res.Outcomes[0], OK, "")
				return
			}
			wantOutcome(t, res.Outcomes[0], Discard, "TypeError")
			if !strings.Contains(res.Outcomes[0].Message, tc.msg) {
				t.Errorf("message %q, want %q in it", res.Outcomes[0].Message, tc.msg)
			}
		})
	}
	wild := compile(t, KindDestination, `async function onTrack() {}`, withHosts("*.example.com"))
	for host, want := range map[string]bool{"api.example.com": true, "a.b.example.com": true, "API.Example.COM:443": true, "example.com": false, "evilexample.com": false, "example.com.evil.net": false} {
		if got := hostAllowed(wild.spec.AllowedHosts, host); got != want {
			t.Errorf("hostAllowed(*.example.com, %q) = %v, want %v", host, got, want)
		}
	}
}

// TestFetchRedirectStaysOnAllowedHosts: an allowed host that redirects
// elsewhere does not take fetch there (it did: Go's client follows
// redirects to any host).
func TestFetchRedirectStaysOnAllowedHosts(t *testing.T) {
	inner := newFakeAPI(t)
	inner.script(func(fakeRequest) (int, string) { return 200, `"secret"` })
	_, innerPort, _ := strings.Cut(inner.host(), ":")
	outer := newFakeAPI(t, serving(func(w http.ResponseWriter, r *http.Request) {
		target := "http://localhost:" + innerPort + "/internal"
		if r.URL.Path == "/same" {
			target = "http://" + r.Host + "/landed"
		}
		if r.URL.Path == "/landed" {
			io.WriteString(w, `"landed"`)
			return
		}
		http.Redirect(w, r, target, http.StatusFound)
	}))
	r := newRunner(t)
	p := compile(t, KindInsert, `async function onTrack(e, s) { const r = await fetch(s.base + e.properties.path); e.properties.body = await r.json(); return e }`,
		withSettings(map[string]any{"base": outer.URL}), withHosts(outer.host()))
	res := r.Insert(context.Background(), p, track("E", map[string]any{"path": "/elsewhere"}))
	wantOutcome(t, res.Outcome, Discard, "TypeError")
	if !strings.Contains(res.Message, `redirected to host "localhost:`+innerPort+`"`) {
		t.Errorf("message %q", res.Message)
	}
	if n := len(inner.requests()); n != 0 {
		t.Errorf("the host not allowed got %d requests", n)
	}
	res = r.Insert(context.Background(), p, track("E", map[string]any{"path": "/same"}))
	if res.Status != OK || !strings.Contains(string(res.JSON), `"body":"landed"`) {
		t.Errorf("a redirect to the same host: %v %s", res.Outcome.Err(), res.JSON)
	}
}

func TestFetchResponseAndRequestShapes(t *testing.T) {
	api := newFakeAPI(t, serving(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Request-Id", "rq_1")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "query": r.URL.RawQuery, "ct": r.Header.Get("Content-Type"), "body": string(b), "custom": r.Header.Get("X-Custom")})
	}))
	r := newRunner(t)
	p := compile(t, KindInsert, `async function onTrack(event, settings) {
  const u = new URL('/echo', settings.base)
  u.searchParams.append('q', 'a b&c')
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope: 'read write' })
  const res = await fetch(u, { method: 'post', body: form, headers: [['X-Custom', 'v']] })
  const j = await res.json()
  event.properties = { status: res.status, ok: res.ok, statusText: res.statusText, id: res.headers.get('x-request-id'), cookies: res.headers.get('set-cookie'), url: res.url, j }
  return event
}`, withSettings(map[string]any{"base": api.URL}), withHosts(api.host()))
	res := r.Insert(context.Background(), p, track("E", nil))
	if res.Status != OK {
		t.Fatal(res.Outcome.Err())
	}
	var ev struct{ Properties map[string]any }
	json.Unmarshal(res.JSON, &ev)
	want := map[string]any{"status": 201.0, "ok": true, "statusText": "Created", "id": "rq_1", "cookies": "a=1, b=2", "url": api.URL + "/echo?q=a+b%26c",
		"j": map[string]any{"method": "POST", "query": "q=a+b%26c", "ct": "application/x-www-form-urlencoded;charset=UTF-8", "body": "grant_type=client_credentials&scope=read+write", "custom": "v"}}
	b1, _ := json.Marshal(ev.Properties)
	b2, _ := json.Marshal(want)
	if string(b1) != string(b2) {
		t.Errorf("got  %s\nwant %s", b1, b2)
	}
}

func TestFetchLimits(t *testing.T) {
	api := newFakeAPI(t, serving(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, strings.Repeat("x", 2048))
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		default:
			io.WriteString(w, "ok")
		}
	}))

	r := newRunner(t, func(o *Options) { o.MaxResponseBytes = 1024 })
	run := func(code string, timeout time.Duration) Outcome {
		p := compile(t, KindDestination, "async function onTrack(e, s) {\n"+code+"\n}", withSettings(map[string]any{"base": api.URL}), withHosts(api.host()), withTimeout(timeout))
		return r.Deliver(context.Background(), p, []EventIn{track("E", nil)}).Outcomes[0]
	}
	o := run(`await fetch(s.base + '/big')`, time.Second)
	wantOutcome(t, o, Retry, "FetchError")
	if !strings.Contains(o.Message, "larger than 1024 bytes") {
		t.Errorf("message %q", o.Message)
	}
	start := time.Now()
	o = run(`try { await fetch(s.base + '/slow') } catch (e) { console.log('caught', e.name) } for (;;) {}`, 150*time.Millisecond)
	wantOutcome(t, o, Retry, ClassTimeout)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a fetch past the time limit took %s", d)
	}
	// 100 requests are allowed; the 101st ends the call even if caught.
	o = run(`for (let i = 0; i < 100; i++) await fetch(s.base + '/ok')`, 10*time.Second)
	wantOutcome(t, o, OK, "")
	o = run(`for (let i = 0; i < 101; i++) { try { await fetch(s.base + '/ok') } catch (e) {} }`, 10*time.Second)
	wantOutcome(t, o, Discard, "FetchError")
	if !strings.Contains(o.Message, "at most 100 requests") {
		t.Errorf("message %q", o.Message)
	}
}
