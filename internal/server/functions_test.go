package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiReceiver is a third-party API a destination function calls: it keeps
// each request's body by the messageId it carries, answers 500 to the
// first request for an id in flaky, and records the Authorization header.
type apiReceiver struct {
	mu    sync.Mutex
	got   map[string][]map[string]any
	auth  map[string]string
	flaky map[string]bool
}

func newAPIReceiver(t *testing.T, flaky ...string) (*apiReceiver, *httptest.Server) {
	a := &apiReceiver{got: map[string][]map[string]any{}, auth: map[string]string{}, flaky: map[string]bool{}}
	for _, id := range flaky {
		a.flaky[id] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("API body: %v", err)
		}
		id, _ := body["id"].(string)
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.flaky[id] {
			delete(a.flaky, id)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		a.got[id] = append(a.got[id], body)
		a.auth[id] = r.Header.Get("Authorization")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *apiReceiver) waitFor(t *testing.T, ids ...string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		a.mu.Lock()
		missing := ""
		for _, id := range ids {
			if len(a.got[id]) == 0 {
				missing = id
				break
			}
		}
		a.mu.Unlock()
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API never got %q", missing)
		}
	}
}

// The functions of the end-to-end test, in the shapes Segment's
// documentation gives them.
const (
	// A payment provider's webhook, signed with HMAC-SHA256 of the body.
	sourceFunction = `
async function onRequest(request, settings) {
  const signature = request.headers.get("X-Signature");
  const expected = crypto.createHmac("sha256", settings.signingSecret).update(request.text()).digest("hex");
  if (signature !== expected) {
    throw new ValidationError("the signature does not match");
  }
  const body = request.json();
  if (body.type !== "charge.succeeded") {
    throw new EventNotSupported(body.type + " is not handled");
  }
  Segment.identify({ userId: body.customer.id, traits: { email: body.customer.email, plan: body.customer.plan } });
  Segment.track({
    messageId: "charge-" + body.id,
    userId: body.customer.id,
    event: "Charge Succeeded",
    properties: { amount: body.amount / 100, currency: body.currency, source: request.url.searchParams.get("from") },
  });
}`
	// An API no built-in destination covers, with Basic auth.
	destinationFunction = `
async function onTrack(event, settings) {
  const res = await fetch(settings.endpoint + "/events", {
    method: "POST",
    headers: { Authorization: "Basic " + btoa(settings.apiKey + ":"), "Content-Type": "application/json" },
    body: JSON.stringify({ id: event.messageId, name: event.event, user: event.userId, props: event.properties }),
  });
  if (res.status >= 500 || res.status === 429) throw new RetryError("the API answered " + res.status);
  if (!res.ok) throw new ValidationError("the API refused the event: " + res.status);
  console.log("sent", event.messageId);
}
async function onIdentify(event, settings) {
  if (!event.traits || !event.traits.email) throw new InvalidEventPayload("an identify needs traits.email");
  await fetch(settings.endpoint + "/users", { method: "POST", body: JSON.stringify({ id: event.messageId, email: event.traits.email }) });
}`
	// Drops internal test events; tags the others.
	sourceInsert = `
async function onTrack(event) {
  if (event.event === "Internal Test") throw new DropEvent("internal traffic");
  event.properties.insertedBy = "web-insert";
  return event;
}
async function onIdentify(event) { return event; }
async function onPage(event) { return event; }`
	// Before the webhook: hashes the email of identifies, drops pages.
	destinationInsert = `
async function onIdentify(event) {
  if (event.traits && event.traits.email) {
    event.traits.email = crypto.createHash("sha256").update(event.traits.email.toLowerCase()).digest("hex");
  }
  return event;
}
async function onTrack(event) { return event; }`
)

func yamlBlock(code string, indent int) string {
	pad := strings.Repeat(" ", indent)
	return "|\n" + pad + strings.ReplaceAll(strings.TrimSpace(code), "\n", "\n"+pad)
}

// TestFunctionsEndToEnd declares a source function, a source insert
// function, a destination function and a destination insert function in
// the config file and checks, through the real pipeline, that a signed
// webhook call becomes events; that the insert functions change and drop
// events; that the destination function calls the API with retries on a
// RetryError and discards with the error's class; and that the tester and
// the logs API answer.
func TestFunctionsEndToEnd(t *testing.T) {
	api, apiSrv := newAPIReceiver(t, "flaky-1")
	hookRcv, hook := newReceiver(t, nil)
	apiURL, _ := url.Parse(apiSrv.URL)
	s := startWithConfig(t, fmt.Sprintf(`
sources:
  - id: payments
    write_key: paymentsKey0000000000000000000001
    function:
      settings: {signingSecret: whsec_test}
      code: %s
  - id: web
    write_key: webWriteKey000000000000000000001
    insert_function:
      code: %s
destinations:
  - id: api
    type: function
    sources: [payments, web]
    allowed_hosts: [%q]
    settings: {endpoint: %q, apiKey: key123}
    code: %s
  - id: hook
    type: webhook
    sources: [web]
    settings: {url: %q}
    insert_function:
      code: %s
`, yamlBlock(sourceFunction, 8), yamlBlock(sourceInsert, 8), apiURL.Host, apiSrv.URL, yamlBlock(destinationFunction, 6),
		hook.URL, yamlBlock(destinationInsert, 8)))
	waitQueue(t, s, "api")
	waitQueue(t, s, "hook")

	// The source function: a signed call becomes an identify and a track.
	body := `{"id":"ch_1","type":"charge.succeeded","amount":1250,"currency":"eur","customer":{"id":"cus_9","email":"Ana@Example.com","plan":"pro"}}`
	mac := hmac.New(sha256.New, []byte("whsec_test"))
	mac.Write([]byte(body))
	call := func(body, sig string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", s.URL+"/v1/functions/payments?from=stripe", strings.NewReader(body))
		req.Header.Set("X-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	if st, out := call(body, hex.EncodeToString(mac.Sum(nil))); st != 200 {
		t.Fatalf("source function: %d %v", st, out)
	}
	if st, out := call(body, "forged"); st != 400 || errCode(out) != "ValidationError" {
		t.Errorf("forged signature: %d %v, want 400 ValidationError", st, out)
	}
	if st, out := call(`{}`, "x"); st != 400 {
		t.Errorf("unsigned: %d %v", st, out)
	}
	if st, out := call(body, ""); st != 400 {
		t.Errorf("no signature: %d %v", st, out)
	}
	if st, _ := call(body, hex.EncodeToString(mac.Sum(nil))); st != 200 {
		t.Fatalf("source function again: %d", st)
	}
	if st, out := admin(t, s, "GET", "/v1/functions/nope", ""); st != 405 && st != 404 {
		t.Errorf("GET of a function URL: %d %v", st, out)
	}
	req, _ := http.NewRequest("POST", s.URL+"/v1/functions/web", strings.NewReader(`{}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Errorf("a source without a function: %v %v", resp.StatusCode, err)
	}

	// The track the function emitted reaches the API once (the second call
	// repeats its messageId, deduplicated), mapped by the destination function.
	api.waitFor(t, "charge-ch_1")
	api.mu.Lock()
	got := api.got["charge-ch_1"][0]
	auth := api.auth["charge-ch_1"]
	api.mu.Unlock()
	if props, _ := got["props"].(map[string]any); got["name"] != "Charge Succeeded" || got["user"] != "cus_9" ||
		props["amount"] != 12.5 || props["currency"] != "eur" || props["source"] != "stripe" {
		t.Errorf("API got %v", got)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("key123:")); auth != want {
		t.Errorf("Authorization %q, want %q", auth, want)
	}

	// Through the web source: its insert function tags and drops; the
	// destination function retries a RetryError; the webhook's insert
	// function hashes the email.
	key := "webWriteKey000000000000000000001"
	for _, ev := range []string{
		`{"messageId":"ok-1","userId":"u1","event":"Signed Up","properties":{}}`,
		`{"messageId":"flaky-1","userId":"u1","event":"Paid","properties":{}}`,
		`{"messageId":"drop-1","userId":"u1","event":"Internal Test","properties":{}}`,
	} {
		if st := send(t, s.URL, key, "/v1/track", ev); st != 200 {
			t.Fatalf("track: %d", st)
		}
	}
	if st := send(t, s.URL, key, "/v1/identify", `{"messageId":"id-1","userId":"u1","traits":{"email":"Bo@Example.com"}}`); st != 200 {
		t.Fatal(st)
	}
	if st := send(t, s.URL, key, "/v1/identify", `{"messageId":"id-2","userId":"u2","traits":{}}`); st != 200 {
		t.Fatal(st)
	}
	if st := send(t, s.URL, key, "/v1/page", `{"messageId":"page-1","userId":"u1","name":"Home"}`); st != 200 {
		t.Fatal(st)
	}
	api.waitFor(t, "ok-1", "flaky-1", "id-1")
	hookRcv.wait(t, 4) // ok-1, flaky-1, id-1, id-2; the webhook's insert function has no onPage
	api.mu.Lock()
	if props, _ := api.got["ok-1"][0]["props"].(map[string]any); props["insertedBy"] != "web-insert" {
		t.Errorf("the source insert function did not tag ok-1: %v", api.got["ok-1"])
	}
	if len(api.got["drop-1"]) != 0 || len(api.got["flaky-1"]) != 1 {
		t.Errorf("drop-1 %v, flaky-1 %v", api.got["drop-1"], api.got["flaky-1"])
	}
	api.mu.Unlock()
	hookRcv.mu.Lock()
	sum := sha256.Sum256([]byte("bo@example.com"))
	var traits struct {
		Traits map[string]any `json:"traits"`
	}
	_ = json.Unmarshal([]byte(hookRcv.header["id-1"].Get("X-Body")), &traits)
	if traits.Traits["email"] != hex.EncodeToString(sum[:]) {
		t.Errorf("the webhook got identify %s, want the email hashed", hookRcv.header["id-1"].Get("X-Body"))
	}
	if _, ok := hookRcv.got["page-1"]; ok {
		t.Error("the webhook's insert function has no onPage, yet page-1 was sent")
	}
	hookRcv.mu.Unlock()

	// id-2 (InvalidEventPayload) and page-1 (no onPage: EventNotSupported)
	// are dead letters of the destination function, with their reasons.
	reasons := map[string]string{}
	for deadline := time.Now().Add(15 * time.Second); len(reasons) < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, out := admin(t, s, "GET", "/api/v1/dead-letters?destination=api", "")
		dead, _ := out["dead_letters"].([]any)
		for _, d := range dead {
			m := d.(map[string]any)
			reasons[m["message_id"].(string)] = m["error_reason"].(string)
		}
	}
	if reasons["id-2"] != "invalid_event" || reasons["page-1"] != "unsupported_event_type" || len(reasons) != 2 {
		t.Errorf("dead letters of api: %v", reasons)
	}

	// The console output of the destination function's calls.
	st, out := admin(t, s, "GET", "/api/v1/functions/destination-api/logs", "")
	if logs, _ := out["logs"].([]any); st != 200 || len(logs) == 0 || !strings.Contains(fmt.Sprint(logs), "sent ok-1") {
		t.Errorf("logs: %d %v", st, out)
	}
	// The tester runs a saved function on a sample event.
	st, out = admin(t, s, "POST", "/api/v1/functions/source-web-insert/test", `{"event":{"type":"track","event":"Internal Test","properties":{}}}`)
	if st != 200 || out["status"] != "drop" {
		t.Errorf("tester: %d %v", st, out)
	}
	st, out = admin(t, s, "POST", "/api/v1/functions/test", `{"kind":"insert","code":"function onTrack(e){ e.x = 1; return e }","event":{"type":"track"}}`)
	if ev, _ := out["event"].(map[string]any); st != 200 || out["status"] != "ok" || ev["x"] != float64(1) {
		t.Errorf("inline tester: %d %v", st, out)
	}
	st, out = admin(t, s, "POST", "/api/v1/functions/test", `{"kind":"insert","code":"function onTrack(e){ return e","event":{"type":"track"}}`)
	if st != 400 || errCode(out) != "invalid_function" {
		t.Errorf("tester with broken code: %d %v", st, out)
	}
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestFunctionRedeploy changes a destination function through the Config
// API and checks that a new version is not live until it is deployed,
// and that a deployed one takes effect without restarting the queue.
func TestFunctionRedeploy(t *testing.T) {
	api, apiSrv := newAPIReceiver(t)
	apiURL, _ := url.Parse(apiSrv.URL)
	s := startWithConfig(t, `
sources:
  - id: web
    write_key: webWriteKey000000000000000000001
`)
	code := func(tag string) string {
		b, _ := json.Marshal(fmt.Sprintf(`async function onTrack(event, settings) {
  await fetch(settings.endpoint, { method: "POST", body: JSON.stringify({ id: event.messageId, tag: %q }) });
}`, tag))
		return string(b)
	}
	st, out := admin(t, s, "POST", "/api/v1/functions", fmt.Sprintf(`{"id":"relay","kind":"destination","code":%s,"settings":{"endpoint":%q},"allowed_hosts":[%q]}`,
		code("v1"), apiSrv.URL, apiURL.Host))
	if st != 201 && st != 200 {
		t.Fatalf("create function: %d %v", st, out)
	}
	st, out = admin(t, s, "POST", "/api/v1/destinations", `{"id":"relay","type":"function","enabled":true,"sources":["web"],"settings":{"function":"relay"}}`)
	if st != 201 && st != 200 {
		t.Fatalf("create destination: %d %v", st, out)
	}
	waitQueue(t, s, "relay")
	key := "webWriteKey000000000000000000001"
	sendTagged := func(id string) string {
		if st := send(t, s.URL, key, "/v1/track", fmt.Sprintf(`{"messageId":%q,"userId":"u","event":"E"}`, id)); st != 200 {
			t.Fatal(st)
		}
		api.waitFor(t, id)
		api.mu.Lock()
		defer api.mu.Unlock()
		tag, _ := api.got[id][0]["tag"].(string)
		return tag
	}
	if tag := sendTagged("a"); tag != "v1" {
		t.Errorf("first version sent tag %q", tag)
	}
	st, out = admin(t, s, "PATCH", "/api/v1/functions/relay", fmt.Sprintf(`{"code":%s}`, code("v2")))
	if st != 200 || out["version"] != float64(2) || out["deployed_version"] != float64(1) {
		t.Fatalf("update: %d %v", st, out)
	}
	if tag := sendTagged("b"); tag != "v1" {
		t.Errorf("a saved, undeployed version ran: tag %q", tag)
	}
	if st, out = admin(t, s, "POST", "/api/v1/functions/relay/deploy", `{}`); st != 200 {
		t.Fatalf("deploy: %d %v", st, out)
	}
	if tag := sendTagged("c"); tag != "v2" {
		t.Errorf("after deploy, tag %q", tag)
	}
	if st, out = admin(t, s, "POST", "/api/v1/functions/relay/deploy", `{"version":1}`); st != 200 {
		t.Fatalf("rollback: %d %v", st, out)
	}
	if tag := sendTagged("d"); tag != "v1" {
		t.Errorf("after rollback, tag %q", tag)
	}
	if st, _ := admin(t, s, "DELETE", "/api/v1/functions/relay", ""); st < 400 {
		t.Errorf("deleting a function a destination uses: %d", st)
	}
}

// TestDeletionReachesDestinationFunction checks that a regulation that
// deletes users' data is sent to a destination function's onDelete, and
// that a suppress-only one is not.
func TestDeletionReachesDestinationFunction(t *testing.T) {
	api, apiSrv := newAPIReceiver(t)
	apiURL, _ := url.Parse(apiSrv.URL)
	s := startWithConfig(t, fmt.Sprintf(`
sources:
  - id: web
    write_key: webWriteKey000000000000000000001
destinations:
  - id: crm
    type: function
    sources: [web]
    allowed_hosts: [%q]
    settings: {endpoint: %q}
    code: |
      async function onTrack(event) {}
      async function onDelete(event, settings) {
        const res = await fetch(settings.endpoint, { method: "DELETE", body: JSON.stringify({ id: event.messageId, user: event.userId }) });
        if (!res.ok) throw new RetryError("delete failed");
      }
`, apiURL.Host, apiSrv.URL))
	waitQueue(t, s, "crm")
	st, out := admin(t, s, "POST", "/api/v1/regulations", `{"regulationType":"SUPPRESS_ONLY","subjectType":"USER_ID","subjectIds":["keep"]}`)
	if st != 200 {
		t.Fatalf("regulation: %d %v", st, out)
	}
	st, out = admin(t, s, "POST", "/api/v1/regulations", `{"regulationType":"DELETE_ONLY","subjectType":"USER_ID","subjectIds":["u1","u2"]}`)
	if st != 200 {
		t.Fatalf("regulation: %d %v", st, out)
	}
	reg := out["data"].(map[string]any)["regulateId"].(string)
	api.waitFor(t, "delete-"+reg+"-u1", "delete-"+reg+"-u2")
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.got) != 2 || api.got["delete-"+reg+"-u1"][0]["user"] != "u1" {
		t.Errorf("the API got %v, want the two deletions only", api.got)
	}
}
