package redisstream

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
)

func TestParseSettings(t *testing.T) {
	good := []struct {
		name     string
		settings map[string]any
		want     Settings
	}{
		{"defaults", map[string]any{"stream": "events"},
			Settings{URL: "redis://127.0.0.1:6379/0", Stream: "events", Timeout: 5 * time.Second}},
		{"everything", map[string]any{"url": "rediss://u:p@redis.example:6380/3", "stream": "conflux:{{source}}:{{type}}",
			"max_len": 100000.0, "timeout": "750ms"},
			Settings{URL: "rediss://u:p@redis.example:6380/3", Stream: "conflux:{{source}}:{{type}}", MaxLen: 100000, Timeout: 750 * time.Millisecond}},
		{"unix socket", map[string]any{"url": "unix:///run/redis.sock?db=2", "stream": "e"},
			Settings{URL: "unix:///run/redis.sock?db=2", Stream: "e", Timeout: 5 * time.Second}},
		{"strings from the environment", map[string]any{"stream": "e", "max_len": "500"},
			Settings{URL: DefaultSettings.URL, Stream: "e", MaxLen: 500, Timeout: 5 * time.Second}},
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
		{"no stream", map[string]any{}, []string{"settings.stream: required"}},
		{"empty url", map[string]any{"stream": "e", "url": ""}, []string{"settings.url: required"}},
		{"http url", map[string]any{"stream": "e", "url": "http://127.0.0.1:6379"}, []string{"settings.url: redis: invalid URL scheme: http"}},
		{"bad database", map[string]any{"stream": "e", "url": "redis://127.0.0.1:6379/zero"}, []string{`settings.url: redis: invalid database number: "zero"`}},
		{"unknown URL option", map[string]any{"stream": "e", "url": "redis://127.0.0.1:6379/0?colour=red"}, []string{"settings.url: redis: unexpected option: colour"}},
		{"unparsable url hides its password", map[string]any{"stream": "e", "url": "redis://u:hunter2@a:63%zz/0"}, []string{"settings.url: not a URL"}},
		{"unknown placeholder", map[string]any{"stream": "conflux:{{event}}"}, []string{"settings.stream: unknown placeholder {{event}}"}},
		{"unclosed placeholder", map[string]any{"stream": "conflux:{{source"}, []string{`settings.stream: "{{" without "}}"`}},
		{"max_len negative", map[string]any{"stream": "e", "max_len": -1.0}, []string{"settings.max_len: must be at least 0"}},
		{"max_len fractional", map[string]any{"stream": "e", "max_len": 1.5}, []string{"settings.max_len: must be a whole number, not 1.5"}},
		{"max_len not a number", map[string]any{"stream": "e", "max_len": "many"}, []string{`settings.max_len: must be a whole number, not "many"`}},
		{"timeout a number", map[string]any{"stream": "e", "timeout": 5.0}, []string{"settings.timeout: must be a duration string"}},
		{"timeout not a duration", map[string]any{"stream": "e", "timeout": "soon"}, []string{`settings.timeout: must be a duration such as "10s": "soon" is not one`}},
		{"timeout zero", map[string]any{"stream": "e", "timeout": "0s"}, []string{"settings.timeout: must be more than 0"}},
		{"unknown setting", map[string]any{"stream": "e", "subject": "x"}, []string{"settings.subject: unknown setting"}},
		{"wrong type", map[string]any{"stream": true}, []string{"settings.stream: must be a string, not a boolean"}},
		{"every problem at once", map[string]any{"url": "http://x", "timeout": "-1s", "max_len": -5.0},
			[]string{"settings.url:", "settings.stream: required", "settings.max_len:", "settings.timeout: must be more than 0"}},
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
			if strings.Count(err.Error(), "settings.stream") > 1 {
				t.Errorf("error %q reports the stream twice", err)
			}
			d, err := Type.New(t.Context(), deliver.Config{ID: "d", Settings: tc.settings})
			if err == nil {
				_ = d.Close()
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestURLNeverPrintsPassword(t *testing.T) {
	s := Settings{URL: "redis://conflux:pa55word@127.0.0.1:6379/0", Stream: "e"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, s); strings.Contains(out, "pa55word") {
			t.Errorf("%s of the settings reveals the password: %s", format, out)
		}
	}
}

func TestRenderKey(t *testing.T) {
	tests := []struct{ template, source, typ, want string }{
		{"events", "web", "track", "events"},
		{"conflux:{{source}}", "web", "track", "conflux:web"},
		{"conflux:{{ source }}:{{type}}", "ios", "screen", "conflux:ios:screen"},
		{"{{type}}", "s", "identify", "identify"},
	}
	for _, tc := range tests {
		t.Run(tc.template, func(t *testing.T) {
			parts, err := parseKey(tc.template)
			if err != nil {
				t.Fatal(err)
			}
			if got := renderKey(parts, tc.source, tc.typ); got != tc.want {
				t.Errorf("renderKey = %q, want %q", got, tc.want)
			}
		})
	}
}
