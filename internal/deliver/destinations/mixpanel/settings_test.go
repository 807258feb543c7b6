package mixpanel

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseSettings(t *testing.T) {
	sa := map[string]any{"project_id": "2195193", "service_account_username": "sa", "service_account_secret": "s3cret"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range sa {
			m[k] = v
		}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name     string
		settings map[string]any
		wantErr  []string // each must appear in the error; none: valid
		check    func(t *testing.T, s Settings)
	}{
		{name: "service account, defaults", settings: sa, check: func(t *testing.T, s Settings) {
			if s.Region != "us" || s.BatchSize != 1000 || s.Timeout != 10*time.Second || !s.ConsolidatedPageCalls {
				t.Errorf("defaults not applied: %+v", s)
			}
			if s.baseURL() != "https://api.mixpanel.com" {
				t.Errorf("base URL %q", s.baseURL())
			}
			if u, p, proj := s.importAuth(); u != "sa" || p != "s3cret" || !proj {
				t.Errorf("import auth %q %q %v", u, p, proj)
			}
		}},
		{name: "every setting", settings: with(map[string]any{"project_token": "tok", "region": "EU", "batch_size": float64(250),
			"timeout": "3s", "consolidated_page_calls": false, "group_key": "company_id", "url": "http://127.0.0.1:9/mp/"}),
			check: func(t *testing.T, s Settings) {
				if s.Region != "eu" || s.BatchSize != 250 || s.Timeout != 3*time.Second || s.ConsolidatedPageCalls ||
					s.GroupKey != "company_id" || s.ProjectToken != "tok" || s.baseURL() != "http://127.0.0.1:9/mp" {
					t.Errorf("settings %+v, base URL %q", s, s.baseURL())
				}
			}},
		{name: "region in", settings: with(map[string]any{"region": "in"}), check: func(t *testing.T, s Settings) {
			if s.baseURL() != "https://api-in.mixpanel.com" {
				t.Errorf("base URL %q", s.baseURL())
			}
		}},
		{name: "project id as a number", settings: with(map[string]any{"project_id": float64(2195193)}), check: func(t *testing.T, s Settings) {
			if s.ProjectID != "2195193" {
				t.Errorf("project id %q", s.ProjectID)
			}
		}},
		{name: "project id from YAML", settings: with(map[string]any{"project_id": 2195193}), check: func(t *testing.T, s Settings) {
			if s.ProjectID != "2195193" {
				t.Errorf("project id %q", s.ProjectID)
			}
		}},
		{name: "batch size as json.Number", settings: with(map[string]any{"batch_size": json.Number("20")}), check: func(t *testing.T, s Settings) {
			if s.BatchSize != 20 {
				t.Errorf("batch size %d", s.BatchSize)
			}
		}},
		{name: "api secret", settings: map[string]any{"api_secret": "legacy"}, check: func(t *testing.T, s Settings) {
			if u, p, proj := s.importAuth(); u != "legacy" || p != "" || proj {
				t.Errorf("import auth %q %q %v", u, p, proj)
			}
		}},
		{name: "project token only", settings: map[string]any{"project_token": "tok"}, check: func(t *testing.T, s Settings) {
			if u, p, proj := s.importAuth(); u != "tok" || p != "" || proj {
				t.Errorf("import auth %q %q %v", u, p, proj)
			}
		}},
		{name: "null keeps the default", settings: with(map[string]any{"region": nil, "timeout": nil}), check: func(t *testing.T, s Settings) {
			if s.Region != "us" {
				t.Errorf("region %q", s.Region)
			}
		}},

		{name: "no settings", settings: nil, wantErr: []string{"no credentials"}},
		{name: "username without secret", settings: with(map[string]any{"service_account_secret": nil}), wantErr: []string{"settings.service_account_secret: required"}},
		{name: "secret without username", settings: with(map[string]any{"service_account_username": nil}), wantErr: []string{"settings.service_account_username: required"}},
		{name: "service account without project", settings: with(map[string]any{"project_id": nil}), wantErr: []string{"settings.project_id: required"}},
		{name: "service account and api secret", settings: with(map[string]any{"api_secret": "x"}), wantErr: []string{"settings.api_secret:"}},
		{name: "project id not a number", settings: with(map[string]any{"project_id": "my-project"}), wantErr: []string{"settings.project_id:", `"my-project"`}},
		{name: "project id zero", settings: with(map[string]any{"project_id": "0"}), wantErr: []string{"settings.project_id:"}},
		{name: "bad region", settings: with(map[string]any{"region": "mars"}), wantErr: []string{"settings.region:", `"mars"`}},
		{name: "region not a string", settings: with(map[string]any{"region": 1}), wantErr: []string{"settings.region: must be a string"}},
		{name: "batch size too big", settings: with(map[string]any{"batch_size": 2001}), wantErr: []string{"settings.batch_size: must be from 1 to 2000"}},
		{name: "batch size zero", settings: with(map[string]any{"batch_size": 0}), wantErr: []string{"settings.batch_size:"}},
		{name: "batch size fractional", settings: with(map[string]any{"batch_size": 1.5}), wantErr: []string{"settings.batch_size: must be a whole number"}},
		{name: "timeout not a duration", settings: with(map[string]any{"timeout": "soon"}), wantErr: []string{"settings.timeout:", `"soon"`}},
		{name: "timeout a number", settings: with(map[string]any{"timeout": 10}), wantErr: []string{"settings.timeout: must be a duration string"}},
		{name: "timeout negative", settings: with(map[string]any{"timeout": "-1s"}), wantErr: []string{"settings.timeout: must be more than 0"}},
		{name: "url relative", settings: with(map[string]any{"url": "api.mixpanel.com"}), wantErr: []string{"settings.url:"}},
		{name: "url with a query", settings: with(map[string]any{"url": "https://proxy.example/?x=1"}), wantErr: []string{"settings.url: must not have a query"}},
		{name: "page calls not a bool", settings: with(map[string]any{"consolidated_page_calls": "yes"}), wantErr: []string{"settings.consolidated_page_calls:"}},
		{name: "unknown key", settings: with(map[string]any{"projectid": "1"}), wantErr: []string{"settings.projectid: unknown setting"}},
		{name: "every problem at once", settings: map[string]any{"region": "mars", "batch_size": -1, "timeout": "x", "service_account_username": "sa"},
			wantErr: []string{"settings.region:", "settings.batch_size:", "settings.timeout:", "settings.service_account_secret:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSettings(tt.settings)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("ParseSettings: %v", err)
				}
				tt.check(t, s)
				return
			}
			if err == nil {
				t.Fatalf("ParseSettings passed, want an error with %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error reveals the secret: %v", err)
			}
		})
	}
}

// TestSecretsNotPrinted proves that formatting the settings hides the
// credentials.
func TestSecretsNotPrinted(t *testing.T) {
	s, err := ParseSettings(map[string]any{"project_id": "1", "service_account_username": "sa",
		"service_account_secret": "s3cret", "project_token": "tok"})
	if err != nil {
		t.Fatal(err)
	}
	s.APISecret = "legacy-secret"
	js, _ := json.Marshal(s)
	for _, out := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), string(js)} {
		if strings.Contains(out, "s3cret") || strings.Contains(out, "legacy-secret") {
			t.Errorf("a secret shows in %s", out)
		}
	}
}
