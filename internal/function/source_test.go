package function

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const signingSecret = "whsec_test_5a1f"

// paymentsRequest is a webhook delivery of the payment provider of
// testdata/source_payments.js, signed with secret.
func paymentsRequest(body, secret string) Request {
	const ts = "1767225600"
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + body))
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Payments-Signature", "t="+ts+",v1="+hex.EncodeToString(mac.Sum(nil)))
	h.Set("X-Forwarded-For", "203.0.113.9")
	return Request{Method: "POST", URL: "https://conflux.example.com/functions/src_1?source=billing", Headers: h, Body: []byte(body)}
}

func TestSourcePaymentsWebhook(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindSource, testdata(t, "source_payments.js"), withSettings(map[string]any{"signingSecret": signingSecret}))
	for _, tc := range []struct {
		name string
		body string
		want []Emitted // JSON compared as values
	}{
		{"customer.created: identify and group", `{"type":"customer.created","data":{"customer_id":"cus_1","email":"ana@example.com","name":"Ana","plan":"pro","created":1767225600,"company":{"id":"co_9","name":"Acme"}}}`,
			[]Emitted{
				{"identify", []byte(`{"userId":"cus_1","traits":{"email":"ana@example.com","name":"Ana","plan":"pro","createdAt":"2026-01-01T00:00:00.000Z"},"context":{"source":"billing","ip":"203.0.113.9"}}`)},
				{"group", []byte(`{"userId":"cus_1","groupId":"co_9","traits":{"name":"Acme"}}`)},
			}},
		{"customer.created without a company: identify only", `{"type":"customer.created","data":{"customer_id":"cus_2","email":"bo@example.com","name":"Bo","plan":"free","created":0}}`,
			[]Emitted{{"identify", []byte(`{"userId":"cus_2","traits":{"email":"bo@example.com","name":"Bo","plan":"free","createdAt":"1970-01-01T00:00:00.000Z"},"context":{"source":"billing","ip":"203.0.113.9"}}`)}}},
		{"charge.succeeded: track", `{"type":"charge.succeeded","data":{"id":"ch_7","customer_id":"cus_1","amount":2599,"currency":"eur"}}`,
			[]Emitted{{"track", []byte(`{"event":"Payment Succeeded","userId":"cus_1","properties":{"revenue":25.99,"currency":"EUR","charge_id":"ch_7"},"context":{"source":"billing","ip":"203.0.113.9"}}`)}}},
		{"checkout.viewed on the web: page", `{"type":"checkout.viewed","data":{"anonymous_id":"anon_3","url":"https://shop.example.com/checkout","step":2,"platform":"web"}}`,
			[]Emitted{{"page", []byte(`{"anonymousId":"anon_3","name":"Checkout","properties":{"url":"https://shop.example.com/checkout","step":2}}`)}}},
		{"checkout.viewed on iOS: screen", `{"type":"checkout.viewed","data":{"customer_id":"cus_1","step":1,"platform":"ios"}}`,
			[]Emitted{{"screen", []byte(`{"userId":"cus_1","name":"Checkout","properties":{"step":1}}`)}}},
		{"customer.merged: alias", `{"type":"customer.merged","data":{"old_customer_id":"cus_0","customer_id":"cus_1"}}`,
			[]Emitted{{"alias", []byte(`{"previousId":"cus_0","userId":"cus_1"}`)}}},
		{"invoice.paid: set", `{"type":"invoice.paid","data":{"id":"in_5","amount":10000}}`,
			[]Emitted{{"set", []byte(`{"collection":"invoices","id":"in_5","properties":{"amount":100,"paid":true}}`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.OnRequest(context.Background(), p, paymentsRequest(tc.body, signingSecret))
			if res.Status != OK {
				t.Fatalf("outcome %v (logs %q)", res.Outcome.Err(), res.Logs)
			}
			if len(res.Emitted) != len(tc.want) {
				t.Fatalf("emitted %d messages, want %d: %+v", len(res.Emitted), len(tc.want), res.Emitted)
			}
			for i, w := range tc.want {
				if res.Emitted[i].Type != w.Type {
					t.Errorf("message %d is a %s, want a %s", i, res.Emitted[i].Type, w.Type)
				}
				wantJSON(t, res.Emitted[i].JSON, string(w.JSON))
			}
			var typ struct{ Type string }
			_ = json.Unmarshal([]byte(tc.body), &typ)
			if res.Logs != "handled "+typ.Type+"\n" {
				t.Errorf("logs %q", res.Logs)
			}
		})
	}
}

func TestSourcePaymentsWebhookRefused(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindSource, testdata(t, "source_payments.js"), withSettings(map[string]any{"signingSecret": signingSecret}))
	good := `{"type":"charge.succeeded","data":{"id":"ch_7","customer_id":"cus_1","amount":2599,"currency":"eur"}}`
	unsigned := paymentsRequest(good, signingSecret)
	unsigned.Headers.Del("Payments-Signature")
	tampered := paymentsRequest(good, signingSecret)
	tampered.Body = []byte(strings.Replace(good, "2599", "1", 1))
	for _, tc := range []struct {
		name   string
		req    Request
		status Status
		class  string
		msg    string
	}{
		{"signed with another secret", paymentsRequest(good, "whsec_other"), Discard, "ValidationError", "bad signature"},
		{"without a signature", unsigned, Discard, "ValidationError", "missing Payments-Signature"},
		{"body changed after signing", tampered, Discard, "ValidationError", "bad signature"},
		{"an event type it does not handle", paymentsRequest(`{"type":"payout.created","data":{}}`, signingSecret), Discard, "EventNotSupported", "payout.created is not supported"},
		{"a body that is not JSON", paymentsRequest(`{"type":`, signingSecret), Discard, "SyntaxError", ""},
		{"data missing a field it reads", paymentsRequest(`{"type":"charge.succeeded","data":{"amount":1}}`, signingSecret), Discard, "TypeError", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.OnRequest(context.Background(), p, tc.req)
			wantOutcome(t, res.Outcome, tc.status, tc.class)
			if !strings.Contains(res.Message, tc.msg) {
				t.Errorf("message %q, want %q in it", res.Message, tc.msg)
			}
			if len(res.Emitted) != 0 {
				t.Errorf("a failed call emitted %d messages", len(res.Emitted))
			}
		})
	}
}

// TestSourceRequest: what onRequest sees of the request.
func TestSourceRequest(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindSource, `async function onRequest(request, settings) {
  const u = request.url
  Segment.track({
    event: 'Seen',
    properties: {
      method: request.method,
      contentType: request.headers.get('content-type'),
      auth: request.headers.get('AUTHORIZATION'),
      multi: request.headers.get('X-Multi'),
      missing: request.headers.get('X-Missing'),
      has: request.headers.has('x-multi'),
      name: u.searchParams.get('name'),
      tags: u.searchParams.getAll('tag'),
      nothing: u.searchParams.get('nothing'),
      host: u.host, hostname: u.hostname, port: u.port, pathname: u.pathname, protocol: u.protocol, search: u.search,
      href: String(u),
      text: request.text(),
      json: request.json(),
      setting: settings.region,
    },
  })
}`, withSettings(map[string]any{"region": "eu"}))
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Bearer t0k")
	h.Add("X-Multi", "a")
	h.Add("X-Multi", "b")
	res := r.OnRequest(context.Background(), p, Request{Method: "POST", URL: "https://hooks.example.com:8443/f/src_1?name=Jane+Doe&tag=a&tag=b%20c", Headers: h, Body: []byte(`{"n":1}`)})
	if res.Status != OK || len(res.Emitted) != 1 {
		t.Fatalf("%v, %d emitted", res.Outcome.Err(), len(res.Emitted))
	}
	wantJSON(t, res.Emitted[0].JSON, `{"event":"Seen","properties":{"method":"POST","contentType":"application/json","auth":"Bearer t0k",
		"multi":"a, b","missing":null,"has":true,"name":"Jane Doe","tags":["a","b c"],"nothing":null,
		"host":"hooks.example.com:8443","hostname":"hooks.example.com","port":"8443","pathname":"/f/src_1","protocol":"https:",
		"search":"?name=Jane+Doe&tag=a&tag=b+c","href":"https://hooks.example.com:8443/f/src_1?name=Jane+Doe&tag=a&tag=b+c",
		"text":"{\"n\":1}","json":{"n":1},"setting":"eu"}}`)
}

func TestSourceEmitsInOrderOnlyOnSuccess(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindSource, `async function onRequest(request) {
  const body = request.json()
  for (let i = 0; i < body.n; i++) {
    Segment.track({ event: 'E' + i, userId: 'u' })
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  if (body.fail === 'throw') throw new Error('after emitting')
  if (body.fail === 'retry') throw new RetryError('later')
  if (body.fail === 'reject') return Promise.reject(new InvalidEventPayload('rejected'))
}`)
	for _, tc := range []struct {
		body   string
		status Status
		class  string
		n      int
	}{
		{`{"n":3}`, OK, "", 3},
		{`{"n":3,"fail":"throw"}`, Discard, "Error", 0},
		{`{"n":2,"fail":"retry"}`, Retry, "RetryError", 0},
		{`{"n":1,"fail":"reject"}`, Discard, "InvalidEventPayload", 0},
	} {
		res := r.OnRequest(context.Background(), p, Request{Method: "POST", URL: "https://h.example.com/", Body: []byte(tc.body)})
		wantOutcome(t, res.Outcome, tc.status, tc.class)
		if len(res.Emitted) != tc.n {
			t.Errorf("%s: emitted %d, want %d", tc.body, len(res.Emitted), tc.n)
		}
		for i, e := range res.Emitted {
			if want := fmt.Sprintf(`{"event":"E%d","userId":"u"}`, i); e.Type != "track" || string(e.JSON) != want {
				t.Errorf("message %d: %s %s, want track %s", i, e.Type, e.JSON, want)
			}
		}
	}
}

func TestSourceEmitRefusesBadCalls(t *testing.T) {
	r := newRunner(t)
	for _, tc := range []struct{ code, class, msg string }{
		{`Segment.track('Signed Up')`, "TypeError", "Segment.track takes an object, not a string"},
		{`Segment.identify()`, "TypeError", "Segment.identify takes an object, not undefined"},
		{`for (let i = 0; i < 1001; i++) Segment.track({event: 'E'})`, "TypeError", "at most 1000 messages"},
		{`const o = {}; o.self = o; Segment.track(o)`, "TypeError", "circular"},
	} {
		p := compile(t, KindSource, "async function onRequest(request) {\n"+tc.code+"\n}")
		res := r.OnRequest(context.Background(), p, Request{Method: "POST", URL: "https://h.example.com/"})
		wantOutcome(t, res.Outcome, Discard, tc.class)
		if !strings.Contains(res.Message, tc.msg) {
			t.Errorf("%s: message %q, want %q in it", tc.code, res.Message, tc.msg)
		}
	}
	// Segment.* during top-level code (no request) is refused at Compile.
	if _, err := Compile(Spec{ID: "f", Kind: KindSource, Code: "Segment.track({event: 'x'})\nasync function onRequest() {}"}); err == nil || !strings.Contains(err.Error(), "while a request is handled") {
		t.Errorf("Compile: %v", err)
	}
}
