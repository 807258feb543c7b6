package config_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

const token = "test-admin-token-0123456789"

type apiFixture struct {
	url string
	mgr *config.Manager
}

func newAPI(t *testing.T, db *store.DB) *apiFixture {
	t.Helper()
	return newAPIWith(t, db, nil)
}

// newAPIWith is newAPI with setup, if not nil, applied to the API before
// it is registered.
func newAPIWith(t *testing.T, db *store.DB, setup func(*config.API)) *apiFixture {
	t.Helper()
	repo := config.NewRepo(db)
	mgr := config.NewManager(repo, config.Settings{AdminToken: token}, nil)
	if err := mgr.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api := config.NewAPI(repo, mgr)
	if setup != nil {
		setup(api)
	}
	api.Register(mux, func(h http.Handler) http.Handler {
		return httpapi.Bearer(func() string { return token }, h)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &apiFixture{url: srv.URL, mgr: mgr}
}

func (f *apiFixture) call(t *testing.T, method, path, body string, tok ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.url+path, strings.NewReader(body))
	bearer := token
	if len(tok) > 0 {
		bearer = tok[0]
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

func code(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestConfigAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newAPI(t, db)

		// Authentication.
		if st, b := f.call(t, "GET", "/api/v1/sources", "", ""); st != 401 || code(b) != "unauthorized" {
			t.Fatalf("no token: %d %v", st, b)
		}
		if st, _ := f.call(t, "GET", "/api/v1/sources", "", "wrong"); st != 401 {
			t.Fatalf("wrong token: %d", st)
		}

		// Create: a key is generated, and the change is live at once.
		st, src := f.call(t, "POST", "/api/v1/sources", `{"id":"web","name":"Website"}`)
		if st != 201 || src["id"] != "web" || src["origin"] != "api" {
			t.Fatalf("create: %d %v", st, src)
		}
		key1, _ := src["write_key"].(string)
		if len(key1) != 32 {
			t.Fatalf("generated write key %q", key1)
		}
		if s, ok := f.mgr.Current().SourceByWriteKey(key1, time.Now()); !ok || s.ID != "web" {
			t.Fatal("new source not live")
		}

		// Bad input.
		for _, tc := range []struct {
			method, path, body string
			status             int
			code               string
		}{
			{"POST", "/api/v1/sources", `{"id":"Web Site"}`, 400, "validation_error"},
			{"POST", "/api/v1/sources", `{"id":"web"}`, 409, "conflict"},
			{"POST", "/api/v1/sources", `{"id":"x","write_key":"` + key1 + `"}`, 409, "conflict"},
			{"POST", "/api/v1/sources", `{"id":"x","wirte_key":"k"}`, 400, "invalid_json"},
			{"POST", "/api/v1/sources", `{"id":`, 400, "invalid_json"},
			{"POST", "/api/v1/sources", ``, 400, "invalid_json"},
			{"PATCH", "/api/v1/sources/web", `{"id":"other"}`, 400, "validation_error"},
			{"GET", "/api/v1/sources/nope", ``, 404, "not_found"},
			{"POST", "/api/v1/sources/web/rotate-write-key", `{"grace":"soon"}`, 400, "validation_error"},
			{"POST", "/api/v1/destinations", `{"id":"hook","type":"webhook","sources":["nope"]}`, 400, "validation_error"},
			{"POST", "/api/v1/destinations", `{"id":"hook","sources":["web"]}`, 400, "validation_error"},
		} {
			if st, b := f.call(t, tc.method, tc.path, tc.body); st != tc.status || code(b) != tc.code {
				t.Errorf("%s %s %s: %d %v, want %d %s", tc.method, tc.path, tc.body, st, b, tc.status, tc.code)
			}
		}
		if _, b := f.call(t, "POST", "/api/v1/sources", `{"id":"Web Site"}`); b != nil {
			fields, _ := b["error"].(map[string]any)["fields"].([]any)
			if len(fields) == 0 || fields[0].(map[string]any)["path"] != "id" {
				t.Errorf("validation error without the field: %v", b)
			}
		}

		// Update.
		if st, b := f.call(t, "PATCH", "/api/v1/sources/web", `{"name":"Web shop"}`); st != 200 || b["name"] != "Web shop" || b["write_key"] != key1 {
			t.Fatalf("patch: %d %v", st, b)
		}

		// Rotate with a grace period: both keys work; without: only the new one.
		st, rot := f.call(t, "POST", "/api/v1/sources/web/rotate-write-key", `{"grace":"1h"}`)
		key2, _ := rot["write_key"].(string)
		if st != 200 || key2 == "" || key2 == key1 {
			t.Fatalf("rotate: %d %v", st, rot)
		}
		ws := f.mgr.Current()
		if _, ok := ws.SourceByWriteKey(key1, time.Now()); !ok {
			t.Error("old key refused during its grace period")
		}
		if _, ok := ws.SourceByWriteKey(key1, time.Now().Add(2*time.Hour)); ok {
			t.Error("old key accepted after its grace period")
		}
		f.call(t, "POST", "/api/v1/sources/web/rotate-write-key", "")
		ws = f.mgr.Current()
		if _, ok := ws.SourceByWriteKey(key2, time.Now()); ok {
			t.Error("key rotated without grace still accepted")
		}

		// Destinations.
		st, d := f.call(t, "POST", "/api/v1/destinations", `{"id":"hook","type":"webhook","sources":["web"],"settings":{"url":"http://127.0.0.1:9/x","batch_size":10}}`)
		if st != 201 || d["enabled"] != true || d["settings"].(map[string]any)["batch_size"] != 10.0 {
			t.Fatalf("create destination: %d %v", st, d)
		}
		if st, d := f.call(t, "PATCH", "/api/v1/destinations/hook", `{"enabled":false}`); st != 200 || d["enabled"] != false || d["type"] != "webhook" {
			t.Fatalf("patch destination: %d %v", st, d)
		}
		if st, b := f.call(t, "GET", "/api/v1/destinations", ""); st != 200 || len(b["destinations"].([]any)) != 1 {
			t.Fatalf("list destinations: %d %v", st, b)
		}
		if n := len(f.mgr.Current().Destinations); n != 1 {
			t.Errorf("live workspace has %d destinations", n)
		}

		// A source used by a destination cannot be deleted.
		if st, b := f.call(t, "DELETE", "/api/v1/sources/web", ""); st != 409 || !strings.Contains(b["error"].(map[string]any)["message"].(string), "hook") {
			t.Fatalf("delete referenced source: %d %v", st, b)
		}
		if st, _ := f.call(t, "DELETE", "/api/v1/destinations/hook", ""); st != 204 {
			t.Fatalf("delete destination: %d", st)
		}
		if st, _ := f.call(t, "DELETE", "/api/v1/sources/web", ""); st != 204 {
			t.Fatalf("delete source: %d", st)
		}
		if st, _ := f.call(t, "GET", "/api/v1/sources/web", ""); st != 404 {
			t.Fatalf("deleted source: %d", st)
		}
		if _, ok := f.mgr.Current().Source("web"); ok {
			t.Error("deleted source still live")
		}
	})
}

// TestManagerSeesOtherWriters: a change written to the store by another
// process (another node) reaches this one through Run's polling.
func TestManagerSeesOtherWriters(t *testing.T) {
	db := storetest.SQLite(t)
	mgr := config.NewManager(config.NewRepo(db), config.Settings{}, nil)
	if err := mgr.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- mgr.Run(t.Context()) }()
	other := config.NewRepo(db)
	s, err := other.CreateSource(t.Context(), config.Source{ID: "late", Name: "Late"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, ok := mgr.Current().SourceByWriteKey(s.WriteKey, time.Now()); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("change by another writer not seen within 3s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
