package config_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func TestConfigAPIDelivery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newAPI(t, db)
		mustCall := func(method, path, body string, want int) map[string]any {
			t.Helper()
			st, b := f.call(t, method, path, body)
			if st != want {
				t.Fatalf("%s %s %s: %d %v, want %d", method, path, body, st, b, want)
			}
			return b
		}
		delivery := func(b map[string]any) map[string]any {
			t.Helper()
			d, ok := b["delivery"].(map[string]any)
			if !ok {
				t.Fatalf("body has no delivery object: %v", b)
			}
			return d
		}
		live := func() config.DeliveryOptions {
			t.Helper()
			ds := f.mgr.Current().Destinations
			if len(ds) != 1 {
				t.Fatalf("live destinations = %+v, want hook alone", ds)
			}
			return ds[0].Delivery
		}

		d := mustCall("POST", "/api/v1/destinations", `{"id":"hook","type":"webhook","delivery":{"concurrency":4,"rate_limit":0.5,"max_retry_age":"240m"}}`, 201)
		want := map[string]any{"concurrency": 4.0, "rate_limit": 0.5, "max_retry_age": "4h"}
		if got := delivery(d); !reflect.DeepEqual(got, want) {
			t.Fatalf("created delivery = %v, want %v", got, want)
		}
		if got := delivery(mustCall("GET", "/api/v1/destinations/hook", "", 200)); !reflect.DeepEqual(got, want) {
			t.Errorf("GET delivery = %v, want %v", got, want)
		}
		if got, want := live(), (config.DeliveryOptions{Concurrency: 4, RateLimit: 0.5, MaxRetryAge: config.Duration(4 * time.Hour)}); got != want {
			t.Errorf("live delivery = %+v, want %+v", got, want)
		}

		// PATCH merges: the keys sent are set, the others kept.
		for _, step := range []struct {
			body string
			want map[string]any
		}{
			{`{"name":"Hook"}`, map[string]any{"concurrency": 4.0, "rate_limit": 0.5, "max_retry_age": "4h"}},
			{`{"delivery":{"rate_limit":10}}`, map[string]any{"concurrency": 4.0, "rate_limit": 10.0, "max_retry_age": "4h"}},
			{`{"delivery":{"max_retry_age":"168h","concurrency":null}}`, map[string]any{"rate_limit": 10.0, "max_retry_age": "168h"}},
			{`{"delivery":{"rate_limit":0}}`, map[string]any{"max_retry_age": "168h"}},
			{`{"delivery":{}}`, map[string]any{"max_retry_age": "168h"}},
			{`{"delivery":null}`, map[string]any{}},
		} {
			if got := delivery(mustCall("PATCH", "/api/v1/destinations/hook", step.body, 200)); !reflect.DeepEqual(got, step.want) {
				t.Errorf("PATCH %s: delivery = %v, want %v", step.body, got, step.want)
			}
		}
		if got := live(); got != (config.DeliveryOptions{}) {
			t.Errorf("live delivery after reset = %+v, want the defaults", got)
		}
		mustCall("PATCH", "/api/v1/destinations/hook", `{"delivery":{"concurrency":2}}`, 200)

		// Bad values: 400 naming the field; nothing changes.
		for _, tc := range []struct {
			body, path, message string
		}{
			{`{"delivery":{"concurrency":300}}`, "delivery.concurrency", "300 is out of range: 1 to 256"},
			{`{"delivery":{"concurrency":-1}}`, "delivery.concurrency", "-1 is out of range"},
			{`{"delivery":{"concurrency":2.5}}`, "delivery.concurrency", "must be a whole number"},
			{`{"delivery":{"concurrency":"4"}}`, "delivery.concurrency", "must be a whole number"},
			{`{"delivery":{"rate_limit":100001}}`, "delivery.rate_limit", "100001 is out of range"},
			{`{"delivery":{"rate_limit":"fast"}}`, "delivery.rate_limit", "must be a number"},
			{`{"delivery":{"max_retry_age":"soon"}}`, "delivery.max_retry_age", `"soon" is not a duration: write it like 4h or 90m`},
			{`{"delivery":{"max_retry_age":14400}}`, "delivery.max_retry_age", "must be a duration string"},
			{`{"delivery":{"max_retry_age":"30s"}}`, "delivery.max_retry_age", "30s is out of range: 1m to 168h"},
			{`{"delivery":{"concurency":4}}`, "delivery.concurency", "unknown field (did you mean concurrency?)"},
			{`{"delivery":[4]}`, "delivery", "must be an object"},
			{`{"delivery":"fast"}`, "delivery", "must be an object"},
			{`{"delivery":{"shards":65}}`, "delivery.shards", "65 is out of range: 1 to 64"},
			{`{"delivery":{"shards":3,"concurrency":2}}`, "delivery.shards", "3 shards need a concurrency of at least 3"},
			{`{"delivery":{"shards":"2"}}`, "delivery.shards", "must be a whole number"},
		} {
			for _, call := range []struct{ method, path, body string }{
				{"POST", "/api/v1/destinations", `{"id":"new","type":"webhook",` + tc.body[1:]},
				{"PATCH", "/api/v1/destinations/hook", tc.body},
			} {
				st, b := f.call(t, call.method, call.path, call.body)
				msg := fmt.Sprint(b["error"])
				if st != 400 || code(b) != "validation_error" || !slices.Equal(fieldPaths(b), []string{tc.path}) || !strings.Contains(msg, tc.message) {
					t.Errorf("%s %s: %d %v, want 400 validation_error at %s: %s", call.method, call.body, st, b, tc.path, tc.message)
				}
			}
		}
		if st, _ := f.call(t, "GET", "/api/v1/destinations/new", ""); st != 404 {
			t.Errorf("a refused destination was created: GET %d", st)
		}
		if got := delivery(mustCall("GET", "/api/v1/destinations/hook", "", 200)); !reflect.DeepEqual(got, map[string]any{"concurrency": 2.0}) {
			t.Errorf("delivery after refused patches = %v, want it unchanged", got)
		}
		if got := delivery(mustCall("PATCH", "/api/v1/destinations/hook", `{"delivery":{"shards":2}}`, 200)); !reflect.DeepEqual(got, map[string]any{"concurrency": 2.0, "shards": 2.0}) {
			t.Errorf("delivery after setting shards = %v, want concurrency 2 and shards 2", got)
		}
		if got := live(); got.Shards != 2 {
			t.Errorf("live delivery after setting shards = %+v, want 2 shards", got)
		}
	})
}

// testCheck is a destination check that knows webhook (which needs a url)
// and counts its calls.
type testCheck struct{ calls atomic.Int64 }

func (c *testCheck) check(_ context.Context, typ string, settings map[string]any) error {
	c.calls.Add(1)
	if typ != "webhook" {
		return fmt.Errorf("%w %q", config.ErrUnknownType, typ)
	}
	var errs []error
	if u, ok := settings["url"].(string); !ok || u == "" {
		errs = append(errs, &config.FieldError{Path: "url", Message: "required"})
	}
	if _, ok := settings["mode"]; ok {
		errs = append(errs, errors.New("mode is not a webhook setting"))
	}
	return errors.Join(errs...)
}

func TestConfigAPIDestinationCheck(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &testCheck{}
		f := newAPIWith(t, db, func(a *config.API) { a.DestinationCheck = c.check })
		if st, b := f.call(t, "POST", "/api/v1/sources", `{"id":"web"}`); st != 201 {
			t.Fatalf("creating a source: %d %v", st, b)
		}
		if st, b := f.call(t, "POST", "/api/v1/destinations", `{"id":"hook","type":"webhook","sources":["web"],"settings":{"url":"https://example.com"}}`); st != 201 {
			t.Fatalf("creating a good destination: %d %v", st, b)
		}

		for _, tc := range []struct {
			name, method, path, body string
			wantFields               []string
			wantMessage              string
		}{
			{"unknown type", "POST", "/api/v1/destinations", `{"id":"x","type":"nope"}`, []string{"type"}, `type: unknown destination type "nope"`},
			{"missing setting", "POST", "/api/v1/destinations", `{"id":"x","type":"webhook","settings":{}}`, []string{"settings.url"}, "settings.url: required"},
			{"every problem of the settings", "POST", "/api/v1/destinations", `{"id":"x","type":"webhook","settings":{"mode":1}}`,
				[]string{"settings.url", "settings"}, "settings: mode is not a webhook setting"},
			{"with the destination's own problems", "POST", "/api/v1/destinations", `{"id":"Bad Id","type":"webhook","delivery":{"concurrency":0.5}}`,
				[]string{"delivery.concurrency", "id", "settings.url"}, "id: "},
			{"no type: the check is not asked", "POST", "/api/v1/destinations", `{"id":"x"}`, []string{"type"}, "type: required"},
			{"patched settings", "PATCH", "/api/v1/destinations/hook", `{"settings":{"url":""}}`, []string{"settings.url"}, "required"},
			{"patched type", "PATCH", "/api/v1/destinations/hook", `{"type":"amplitude"}`, []string{"type"}, `unknown destination type "amplitude"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st, b := f.call(t, tc.method, tc.path, tc.body)
				if st != 400 || code(b) != "validation_error" {
					t.Fatalf("%d %v, want 400 validation_error", st, b)
				}
				if got := fieldPaths(b); !slices.Equal(got, tc.wantFields) {
					t.Errorf("fields %v, want %v", got, tc.wantFields)
				}
				if msg := b["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.wantMessage) {
					t.Errorf("message %q, want it to contain %q", msg, tc.wantMessage)
				}
			})
		}
		if st, _ := f.call(t, "GET", "/api/v1/destinations/x", ""); st != 404 {
			t.Errorf("a refused destination was stored: GET %d", st)
		}
		if _, b := f.call(t, "GET", "/api/v1/destinations/hook", ""); b["type"] != "webhook" || b["settings"].(map[string]any)["url"] != "https://example.com" {
			t.Errorf("hook after refused patches = %v, want it unchanged", b)
		}

		// A patch that leaves type and settings alone does not ask the
		// check: a destination it now refuses can still be turned off.
		before := c.calls.Load()
		if st, b := f.call(t, "PATCH", "/api/v1/destinations/hook", `{"enabled":false,"name":"Hook","delivery":{"concurrency":2}}`); st != 200 || b["enabled"] != false {
			t.Fatalf("patch without type or settings: %d %v", st, b)
		}
		if n := c.calls.Load() - before; n != 0 {
			t.Errorf("the check was asked %d times about a patch without type or settings", n)
		}
		if st, b := f.call(t, "PATCH", "/api/v1/destinations/hook", `{"settings":{"url":"https://example.com/2"}}`); st != 200 || c.calls.Load() != before+1 {
			t.Errorf("patch with good settings: %d %v after %d checks, want 200 after one", st, b, c.calls.Load()-before)
		}
	})
}

// TestConfigAPIWithoutCheck: with no check, any type and settings are
// accepted, as before the hook existed.
func TestConfigAPIWithoutCheck(t *testing.T) {
	f := newAPI(t, storetest.SQLite(t))
	if st, b := f.call(t, "POST", "/api/v1/destinations", `{"id":"x","type":"nope","settings":{"mode":1}}`); st != 201 {
		t.Errorf("create without a check: %d %v, want 201", st, b)
	}
	if st, b := f.call(t, "PATCH", "/api/v1/destinations/x", `{"type":"other","settings":{}}`); st != 200 {
		t.Errorf("patch without a check: %d %v, want 200", st, b)
	}
}
