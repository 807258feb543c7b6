package natsdest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
)

// testCreds has the shape of a NATS credentials file; the keys are not
// real ones, as only the shape is checked before connecting.
const testCreds = `-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
SUAEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLE
------END USER NKEY SEED------
`

func TestParseSettings(t *testing.T) {
	dir := t.TempDir()
	credsFile := filepath.Join(dir, "user.creds")
	if err := os.WriteFile(credsFile, []byte(testCreds), 0o600); err != nil {
		t.Fatal(err)
	}
	notCreds := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notCreds, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	good := []struct {
		name     string
		settings map[string]any
		want     Settings
	}{
		{"defaults", map[string]any{"subject": "events"},
			Settings{URL: "nats://127.0.0.1:4222", Subject: "events", Timeout: 5 * time.Second}},
		{"everything", map[string]any{
			"url": "nats://a:4222, tls://b:4443,ws://c", "subject": "conflux.{{source}}.{{type}}",
			"jetstream": true, "user": "u", "password": "p", "timeout": "250ms",
		}, Settings{URL: "nats://a:4222, tls://b:4443,ws://c", Subject: "conflux.{{source}}.{{type}}",
			JetStream: true, User: "u", Password: "p", Timeout: 250 * time.Millisecond}},
		{"strings from the environment", map[string]any{"subject": "e", "jetstream": "true"},
			Settings{URL: DefaultSettings.URL, Subject: "e", JetStream: true, Timeout: 5 * time.Second}},
		{"token", map[string]any{"subject": "e", "token": "s3cret"},
			Settings{URL: DefaultSettings.URL, Subject: "e", Token: "s3cret", Timeout: 5 * time.Second}},
		{"credentials file", map[string]any{"subject": "e", "credentials": credsFile},
			Settings{URL: DefaultSettings.URL, Subject: "e", Credentials: Secret(credsFile), Timeout: 5 * time.Second}},
		{"credentials inline", map[string]any{"subject": "e", "credentials": testCreds},
			Settings{URL: DefaultSettings.URL, Subject: "e", Credentials: testCreds, Timeout: 5 * time.Second}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSettings(tc.settings)
			if err != nil {
				t.Fatalf("ParseSettings: %v", err)
			}
			if got != tc.want {
				t.Errorf("ParseSettings = %+v, want %+v", got, tc.want)
			}
		})
	}

	bad := []struct {
		name     string
		settings map[string]any
		wantErrs []string
	}{
		{"no subject", map[string]any{}, []string{"settings.subject: required"}},
		{"empty url", map[string]any{"subject": "e", "url": ""}, []string{"settings.url: required"}},
		{"http url", map[string]any{"subject": "e", "url": "http://127.0.0.1:4222"}, []string{`settings.url: server 1: scheme "http"`}},
		{"second url has no host", map[string]any{"subject": "e", "url": "nats://a:4222,nats://"}, []string{"settings.url: server 2 has no host"}},
		{"bad port", map[string]any{"subject": "e", "url": "nats://a:99999"}, []string{`settings.url: server 1: port "99999"`}},
		{"unparsable url hides its password", map[string]any{"subject": "e", "url": "nats://u:hunter2@a:42%zz"}, []string{"settings.url: server 1 is not a URL"}},
		{"wildcard subject", map[string]any{"subject": "conflux.>"}, []string{`settings.subject: wildcard ">"`}},
		{"empty token", map[string]any{"subject": "conflux..{{type}}"}, []string{"settings.subject: empty token"}},
		{"space in subject", map[string]any{"subject": "conflux events"}, []string{"settings.subject: white space"}},
		{"unknown placeholder", map[string]any{"subject": "conflux.{{event}}"}, []string{"settings.subject: unknown placeholder {{event}}"}},
		{"unclosed placeholder", map[string]any{"subject": "conflux.{{type"}, []string{`settings.subject: "{{" without "}}"`}},
		{"jetstream not a bool", map[string]any{"subject": "e", "jetstream": "maybe"}, []string{`settings.jetstream: must be true or false, not "maybe"`}},
		{"timeout a number", map[string]any{"subject": "e", "timeout": 5.0}, []string{"settings.timeout: must be a duration string"}},
		{"timeout not a duration", map[string]any{"subject": "e", "timeout": "soon"}, []string{`settings.timeout: must be a duration such as "10s": "soon" is not one`}},
		{"timeout zero", map[string]any{"subject": "e", "timeout": "0s"}, []string{"settings.timeout: must be more than 0"}},
		{"password without user", map[string]any{"subject": "e", "password": "p"}, []string{"settings.password: needs user"}},
		{"two auth methods", map[string]any{"subject": "e", "token": "t", "user": "u"}, []string{"settings.credentials: credentials, token and user/password are alternatives"}},
		{"missing credentials file", map[string]any{"subject": "e", "credentials": filepath.Join(dir, "nope.creds")}, []string{"settings.credentials: reading the credentials file"}},
		{"not a credentials file", map[string]any{"subject": "e", "credentials": notCreds}, []string{"settings.credentials: not a NATS credentials file"}},
		{"unknown setting", map[string]any{"subject": "e", "stream": "X"}, []string{"settings.stream: unknown setting"}},
		{"wrong type", map[string]any{"subject": 42.0}, []string{"settings.subject: must be a string, not a number"}},
		{"every problem at once", map[string]any{"url": "http://x", "timeout": "-1s"},
			[]string{"settings.url:", "settings.subject: required", "settings.timeout: must be more than 0"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSettings(tc.settings)
			if err == nil {
				t.Fatal("ParseSettings succeeded, want an error")
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q reveals the password", err)
			}
			// New refuses the same settings, without connecting.
			d, err := Type.New(t.Context(), deliver.Config{ID: "d", Settings: tc.settings})
			if err == nil {
				_ = d.Close()
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Settings{Token: "t0ken", Password: "pa55", Credentials: "cr3ds"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, s)
		for _, secret := range []string{"t0ken", "pa55", "cr3ds"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s of the settings reveals %q: %s", format, secret, out)
			}
		}
	}
}

func TestSubjectRender(t *testing.T) {
	tests := []struct {
		template, source, typ, want string
	}{
		{"events", "web", "track", "events"},
		{"conflux.{{source}}.{{type}}", "web", "track", "conflux.web.track"},
		{"conflux.{{ source }}", "web", "page", "conflux.web"},
		{"conflux.{{source}}-{{type}}", "ios", "screen", "conflux.ios-screen"},
		// A value cannot add tokens or wildcards, nor leave one empty.
		{"conflux.{{source}}.{{type}}", "a.b", "*", "conflux.a_b._"},
		{"conflux.{{source}}.{{type}}", "", ">", "conflux._._"},
		{"conflux.{{type}}", "s", "tr ack\n", "conflux.tr_ack_"},
		{"conflux.{{type}}", "s", "événement", "conflux._v_nement"},
	}
	for _, tc := range tests {
		t.Run(tc.template+"/"+tc.source+"/"+tc.typ, func(t *testing.T) {
			s, err := parseSubject(tc.template)
			if err != nil {
				t.Fatalf("parseSubject(%q): %v", tc.template, err)
			}
			got := s.render(tc.source, tc.typ)
			if got != tc.want {
				t.Errorf("render = %q, want %q", got, tc.want)
			}
			if err := checkSubject(got); err != nil {
				t.Errorf("rendered subject %q is not publishable: %v", got, err)
			}
		})
	}
}
