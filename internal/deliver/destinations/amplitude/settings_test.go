package amplitude

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
)

func TestParseSettings(t *testing.T) {
	cases := []struct {
		name     string
		settings map[string]any
		want     Settings // compared when wantErrs is empty
		wantURL  string
		wantErrs []string // each must appear in the error
	}{
		{name: "defaults", settings: map[string]any{"api_key": "k"},
			want:    Settings{APIKey: "k", Endpoint: EndpointStandard, BatchSize: 100, Timeout: 10 * time.Second},
			wantURL: "https://api2.amplitude.com/2/httpapi"},
		{name: "batch endpoint", settings: map[string]any{"api_key": "k", "endpoint": "batch"},
			want:    Settings{APIKey: "k", Endpoint: EndpointBatch, BatchSize: 100, Timeout: 10 * time.Second},
			wantURL: "https://api2.amplitude.com/batch"},
		{name: "eu endpoint", settings: map[string]any{"api_key": "k", "endpoint": "eu"},
			want:    Settings{APIKey: "k", Endpoint: EndpointEU, BatchSize: 100, Timeout: 10 * time.Second},
			wantURL: "https://api.eu.amplitude.com/2/httpapi"},
		{name: "eu batch endpoint", settings: map[string]any{"api_key": "k", "endpoint": "eu_batch"},
			want:    Settings{APIKey: "k", Endpoint: EndpointEUBatch, BatchSize: 100, Timeout: 10 * time.Second},
			wantURL: "https://api.eu.amplitude.com/batch"},
		{name: "everything, numbers as JSON gives them",
			settings: map[string]any{"api_key": " k ", "secret_key": "s", "endpoint": "eu", "url": "http://127.0.0.1:9/2/httpapi",
				"batch_size": float64(500), "timeout": "2s", "min_id_length": float64(3)},
			want: Settings{APIKey: "k", SecretKey: "s", Endpoint: EndpointEU, URL: "http://127.0.0.1:9/2/httpapi",
				BatchSize: 500, Timeout: 2 * time.Second, MinIDLength: 3},
			wantURL: "http://127.0.0.1:9/2/httpapi"},
		{name: "numbers from environment references are strings",
			settings: map[string]any{"api_key": "k", "batch_size": "50", "min_id_length": "1"},
			want:     Settings{APIKey: "k", Endpoint: EndpointStandard, BatchSize: 50, Timeout: 10 * time.Second, MinIDLength: 1},
			wantURL:  "https://api2.amplitude.com/2/httpapi"},
		{name: "Go ints", settings: map[string]any{"api_key": "k", "batch_size": 2000},
			want:    Settings{APIKey: "k", Endpoint: EndpointStandard, BatchSize: 2000, Timeout: 10 * time.Second},
			wantURL: "https://api2.amplitude.com/2/httpapi"},

		{name: "nil settings", settings: nil, wantErrs: []string{"api_key: required"}},
		{name: "empty api key", settings: map[string]any{"api_key": "  "}, wantErrs: []string{"api_key: required"}},
		{name: "api key not a string", settings: map[string]any{"api_key": float64(12)}, wantErrs: []string{"api_key: must be a string, not a number"}},
		{name: "unknown key", settings: map[string]any{"api_key": "k", "apikey": "k"},
			wantErrs: []string{"apikey: unknown setting (known: api_key,"}},
		{name: "unknown endpoint", settings: map[string]any{"api_key": "k", "endpoint": "us"},
			wantErrs: []string{`endpoint: must be one of "standard", "batch", "eu" or "eu_batch", not "us"`}},
		{name: "url scheme", settings: map[string]any{"api_key": "k", "url": "ftp://example.com/x"},
			wantErrs: []string{"url: must be an http or https URL"}},
		{name: "url without host", settings: map[string]any{"api_key": "k", "url": "http:///x"}, wantErrs: []string{"url: \"http:///x\" has no host"}},
		{name: "url unparsable", settings: map[string]any{"api_key": "k", "url": "http://[::1"}, wantErrs: []string{"url: \"http://[::1\" is not a URL"}},
		{name: "batch size zero", settings: map[string]any{"api_key": "k", "batch_size": float64(0)},
			wantErrs: []string{"batch_size: must be from 1 to 2000, not 0"}},
		{name: "batch size too big", settings: map[string]any{"api_key": "k", "batch_size": float64(2001)},
			wantErrs: []string{"batch_size: must be from 1 to 2000, not 2001"}},
		{name: "batch size fractional", settings: map[string]any{"api_key": "k", "batch_size": 2.5},
			wantErrs: []string{"batch_size: must be a whole number, not 2.5"}},
		{name: "batch size text", settings: map[string]any{"api_key": "k", "batch_size": "many"},
			wantErrs: []string{`batch_size: must be a whole number, not "many"`}},
		{name: "batch size bool", settings: map[string]any{"api_key": "k", "batch_size": true},
			wantErrs: []string{"batch_size: must be a whole number, not a boolean"}},
		{name: "timeout without unit", settings: map[string]any{"api_key": "k", "timeout": "10"},
			wantErrs: []string{`timeout: must be a duration such as "10s": "10" is not one`}},
		{name: "timeout number", settings: map[string]any{"api_key": "k", "timeout": float64(10)},
			wantErrs: []string{`timeout: must be a duration string such as "10s", not a number`}},
		{name: "timeout negative", settings: map[string]any{"api_key": "k", "timeout": "-1s"},
			wantErrs: []string{"timeout: must be more than 0 and at most 5m0s, not -1s"}},
		{name: "timeout too long", settings: map[string]any{"api_key": "k", "timeout": "1h"},
			wantErrs: []string{"timeout: must be more than 0 and at most 5m0s, not 1h0m0s"}},
		{name: "min id length zero", settings: map[string]any{"api_key": "k", "min_id_length": float64(0)},
			wantErrs: []string{"min_id_length: must be from 1 to 1024, not 0"}},
		{name: "min id length negative", settings: map[string]any{"api_key": "k", "min_id_length": float64(-2)},
			wantErrs: []string{"min_id_length: must be from 1 to 1024, not -2"}},
		{name: "every problem at once",
			settings: map[string]any{"endpoint": "us", "batch_size": float64(-1), "timeout": "soon", "colour": "red"},
			wantErrs: []string{"api_key: required", "endpoint: must be one of", "batch_size: must be from 1 to 2000",
				"timeout: must be a duration", "colour: unknown setting"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSettings(c.settings)
			if len(c.wantErrs) > 0 {
				if err == nil {
					t.Fatalf("no error, settings %+v", got)
				}
				if !errors.Is(err, ErrInvalidSettings) {
					t.Errorf("error %q does not wrap ErrInvalidSettings", err)
				}
				for _, w := range c.wantErrs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
			if u := got.requestURL(); u != c.wantURL {
				t.Errorf("request URL %q, want %q", u, c.wantURL)
			}
		})
	}
}

func TestSettingsDoNotPrintSecrets(t *testing.T) {
	s, err := ParseSettings(map[string]any{"api_key": "very-secret-api-key", "secret_key": "very-secret-secret"})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, s); strings.Contains(out, "very-secret") {
			t.Errorf("%s prints a secret: %s", format, out)
		}
	}
}

func TestType(t *testing.T) {
	reg := deliver.NewRegistry(Type) // panics if Type is incomplete
	typ, ok := reg.Lookup("amplitude")
	if !ok || typ != Type {
		t.Fatal("the registry does not hold the amplitude type")
	}
	if len(Type.Integrations) != 1 || Type.Integrations[0] != "Amplitude" {
		t.Errorf("integrations %v, want [Amplitude]", Type.Integrations)
	}
	if Type.MaxBatch != 2000 {
		t.Errorf("MaxBatch %d, want 2000 (HTTP V2's limit)", Type.MaxBatch)
	}
	for _, c := range []struct {
		settings map[string]any
		want     int
	}{
		{map[string]any{"api_key": "k"}, 100},
		{map[string]any{"api_key": "k", "batch_size": float64(10)}, 10},
		{map[string]any{"batch_size": float64(10)}, 100}, // invalid settings: New refuses them anyway
	} {
		if got := Type.BatchSize(c.settings); got != c.want {
			t.Errorf("BatchSize(%v) = %d, want %d", c.settings, got, c.want)
		}
	}
	err := reg.Check(t.Context(), "amplitude", map[string]any{"endpoint": "standard"})
	if !errors.Is(err, ErrInvalidSettings) || !strings.Contains(err.Error(), "api_key") {
		t.Errorf("Check with no api_key: %v, want an error naming api_key", err)
	}
	if err := reg.Check(t.Context(), "amplitude", map[string]any{"api_key": "k"}); err != nil {
		t.Errorf("Check with valid settings: %v", err)
	}
	d, err := Type.New(context.Background(), deliver.Config{ID: "amp", Settings: map[string]any{"api_key": "k"},
		HTTP: http.DefaultClient, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
