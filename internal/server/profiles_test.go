package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// profileGet fetches a Profile API path of s's space, waiting up to 10 s
// for it to answer 200 (the aggregation stage applies events shortly
// after they are acknowledged), and returns the decoded body.
func profileGet(t *testing.T, s *servertest.Server, path string, ready func(map[string]any) bool) map[string]any {
	t.Helper()
	url := s.URL + "/v1/spaces/" + s.ProfileSpace + "/collections/" + path
	var body map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest("GET", url, nil)
		req.SetBasicAuth(s.ProfileToken, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = nil
		_ = json.Unmarshal(b, &body)
		if resp.StatusCode == 200 && (ready == nil || ready(body)) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestProfilesEndToEnd sends a user's events through the Tracking API —
// anonymous on two devices, then identified on each — and reads one
// profile back through the Profile API from any of its identifiers, on
// the embedded default and on PostgreSQL with rules from a config file.
func TestProfilesEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) server.Options
	}{
		{"sqlite", func(t *testing.T) server.Options { return server.Options{} }},
		{"postgres with a config file", func(t *testing.T) server.Options {
			cfg := filepath.Join(t.TempDir(), "conflux.yaml")
			if err := os.WriteFile(cfg, []byte(`
profiles:
  space_id: acme
  access_token: profile-token-of-acme-0123456789
identity:
  identifiers:
    - type: phone
      limit: 1
  blocked_values: ["guest", "null"]
`), 0o600); err != nil {
				t.Fatal(err)
			}
			return server.Options{PostgresURL: storetest.PostgresSchema(t), ConfigPath: cfg}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := servertest.Start(t, tc.opts(t))
			if s.ProfileToken == "" || s.ProfileSpace == "" {
				t.Fatalf("no profile space: %q %q", s.ProfileSpace, s.ProfileToken)
			}
			for _, c := range []struct{ path, body string }{
				{"/v1/track", `{"anonymousId":"phone-anon","event":"App Opened","properties":{"phone":"+15550100"}}`},
				{"/v1/page", `{"anonymousId":"laptop-anon","name":"Pricing"}`},
				{"/v1/identify", `{"anonymousId":"phone-anon","userId":"ada","traits":{"email":"ada@example.com","plan":"free"},"timestamp":"2026-12-01T10:00:00Z"}`},
				{"/v1/identify", `{"anonymousId":"laptop-anon","userId":"ada","traits":{"plan":"pro"},"timestamp":"2026-12-01T10:05:00Z"}`},
				{"/v1/identify", `{"anonymousId":"other-anon","userId":"guest","traits":{"plan":"x"}}`},
				{"/v1/group", `{"userId":"ada","groupId":"acme-inc","traits":{"name":"Acme Inc"}}`},
			} {
				if got := send(t, s.URL, s.WriteKey, c.path, c.body); got != 200 {
					t.Fatalf("%s: %d", c.path, got)
				}
			}
			events := profileGet(t, s, "users/profiles/user_id:ada/events?limit=100", func(b map[string]any) bool {
				d, _ := b["data"].([]any)
				return len(d) == 5
			})
			if first := events["data"].([]any)[0].(map[string]any); first["type"] != "group" {
				t.Errorf("newest event %v, want the group call", first)
			}
			for _, id := range []string{"user_id:ada", "anonymous_id:phone-anon", "anonymous_id:laptop-anon", "email:ada@example.com"} {
				traits := profileGet(t, s, "users/profiles/"+id+"/traits", nil)["traits"].(map[string]any)
				if traits["plan"] != "pro" || traits["email"] != "ada@example.com" {
					t.Errorf("%s: traits %v", id, traits)
				}
			}
			links := profileGet(t, s, "users/profiles/user_id:ada/links", nil)["data"].([]any)
			if len(links) != 1 {
				t.Errorf("links %v", links)
			}
			acc := profileGet(t, s, "accounts/profiles/group_id:acme-inc/traits", nil)["traits"].(map[string]any)
			if acc["name"] != "Acme Inc" {
				t.Errorf("account traits %v", acc)
			}
			st, merges := admin(t, s, "GET", "/api/v1/profiles/user_id:ada/merges", "")
			if st != 200 || len(merges["merges"].([]any)) != 1 {
				t.Errorf("merges: %d %v", st, merges)
			}
			if tc.name == "sqlite" {
				return
			}
			// The file's rules: phone is an identifier, guest is blocked.
			phone := profileGet(t, s, "users/profiles/phone:+15550100/traits", nil)["traits"].(map[string]any)
			if phone["plan"] != "pro" {
				t.Errorf("phone: traits %v", phone)
			}
			profileGet(t, s, "users/profiles/anonymous_id:other-anon/traits", nil)
			req, _ := http.NewRequest("GET", s.URL+"/v1/spaces/acme/collections/users/profiles/user_id:guest/traits", nil)
			req.SetBasicAuth(s.ProfileToken, "")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 404 {
				t.Errorf("user_id:guest, a blocked value: %d, want 404", resp.StatusCode)
			}
		})
	}
}

// TestNoProfiles: --no-profiles runs no aggregation stage and mounts no
// Profile API; ingest and the rest work as before.
func TestNoProfiles(t *testing.T) {
	s := servertest.Start(t, server.Options{NoProfiles: true})
	if got := send(t, s.URL, s.WriteKey, "/v1/identify", `{"userId":"u","traits":{"plan":"pro"}}`); got != 200 {
		t.Fatalf("identify: %d", got)
	}
	req, _ := http.NewRequest("GET", s.URL+"/v1/spaces/default/collections/users/profiles/user_id:u/traits", nil)
	req.SetBasicAuth(s.ProfileToken, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("Profile API with --no-profiles: %d, want 404", resp.StatusCode)
	}
	if _, ok := s.Metric(t, `conflux_aggregate_position`); ok {
		t.Error("the aggregation stage's metrics are registered with --no-profiles")
	}
}
