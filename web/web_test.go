package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/web"
)

func newServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	web.Register(mux)
	// What the server mounts besides: the catch-all and an API route,
	// to check that Register's patterns do not conflict with them.
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "catch-all", http.StatusNotFound) })
	mux.HandleFunc("GET /api/v1/destinations", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "api") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestRoutes(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		path, wantType, wantBody string
		wantStatus               int
	}{
		{"/", "text/html; charset=utf-8", `<script src="/ui/app.js"`, 200},
		{"/ui/app.js", "text/javascript; charset=utf-8", `"use strict"`, 200},
		{"/ui/app.css", "text/css; charset=utf-8", ":root", 200},
		{"/ui/index.html", "", "", 404},
		{"/ui/", "", "catch-all", 404},
		{"/ui/missing.js", "", "", 404},
		{"/ui/../web.go", "", "", 404},
		{"/index.html", "", "catch-all", 404},
		{"/api/v1/destinations", "", "api", 200},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantType != "" && resp.Header.Get("Content-Type") != tc.wantType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.wantType)
			}
			if !strings.Contains(body, tc.wantBody) {
				t.Errorf("body does not contain %q:\n%.300s", tc.wantBody, body)
			}
			if tc.wantStatus == 200 && tc.wantType != "" {
				csp := resp.Header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
					t.Errorf("Content-Security-Policy %q", csp)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Error("no X-Content-Type-Options: nosniff")
				}
			}
		})
	}
}

func TestETag(t *testing.T) {
	srv := newServer(t)
	resp, _ := get(t, srv.URL+"/ui/app.js")
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	resp, body := get(t, srv.URL+"/ui/app.js", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("revalidation: %d %q, want 304 and no body", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv.URL+"/", "If-None-Match", etag); resp.StatusCode != 200 {
		t.Errorf("the page with the script's ETag: %d, want 200", resp.StatusCode)
	}
}

// TestStaticFiles checks rules the files must keep: nothing loaded from
// another origin, no inline script or style (the CSP forbids them), and
// no API data turned into HTML.
func TestStaticFiles(t *testing.T) {
	srv := newServer(t)
	_, page := get(t, srv.URL+"/")
	_, js := get(t, srv.URL+"/ui/app.js")
	_, css := get(t, srv.URL+"/ui/app.css")
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//|@import|url\(\s*['"]?(https?:)?//`)
	for name, text := range map[string]string{"index.html": page, "app.js": js, "app.css": css} {
		if m := external.FindString(text); m != "" {
			t.Errorf("%s loads from another origin: %q", name, m)
		}
	}
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|\son[a-z]+=|style="`).MatchString(page) {
		t.Error("index.html has an inline script, style or event handler, which the CSP blocks")
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s: build nodes with el/svg and add API data as text", bad)
		}
	}
}
