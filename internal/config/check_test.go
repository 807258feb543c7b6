package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// webhookCheck knows one type, webhook, whose settings need a string url
// and allow a positive timeout; it records the types it was asked about.
type webhookCheck struct{ asked []string }

func (c *webhookCheck) check(_ context.Context, typ string, settings map[string]any) error {
	c.asked = append(c.asked, typ)
	if typ != "webhook" {
		return fmt.Errorf("%w %q (known: webhook)", ErrUnknownType, typ)
	}
	var errs []error
	if _, ok := settings["url"].(string); !ok {
		errs = append(errs, &FieldError{Path: "url", Message: "required: the URL events are POSTed to"})
	}
	if t, ok := settings["timeout"].(float64); ok && t <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	return errors.Join(errs...)
}

const checkedYAML = `sources:
  - id: web
destinations:
  - id: good
    type: webhook
    settings:
      url: https://example.com/hook
  - id: off
    type: amplitud
    enabled: false
  - id: no-url
    type: webhook
    sources: [web]
    settings:
      timeout: -1
      headers: {X-A: b}
  - id: no-settings
    type: webhook
`

func TestCheckDestinations(t *testing.T) {
	cfg, err := parse("conflux.yaml", []byte(checkedYAML), lookupIn(nil))
	if err != nil {
		t.Fatal(err)
	}
	c := &webhookCheck{}
	err = cfg.CheckDestinations(t.Context(), c.check)
	le, ok := errors.AsType[*LoadError](err)
	if !ok {
		t.Fatalf("err = %v (%T), want a *LoadError", err, err)
	}
	want := []string{
		`conflux.yaml:9:11: destinations[1].type: unknown destination type "amplitud" (known: webhook)`,
		"conflux.yaml:15:7: destinations[2].settings.url: required: the URL events are POSTed to",
		"conflux.yaml:15:7: destinations[2].settings: timeout must be positive",
		// No settings block: the destination's own position.
		"conflux.yaml:17:5: destinations[3].settings.url: required: the URL events are POSTed to",
	}
	var got []string
	for _, fe := range le.Errors {
		got = append(got, fe.Error())
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if wantAsked := []string{"webhook", "amplitud", "webhook", "webhook"}; !slices.Equal(c.asked, wantAsked) {
		t.Errorf("asked about %v, want every destination, the disabled one too: %v", c.asked, wantAsked)
	}
}

// TestCheckDestinationsPositions: a problem with one settings key points at
// that key's value; one deeper inside falls back to it.
func TestCheckDestinationsPositions(t *testing.T) {
	cfg, err := parse("conflux.yaml", []byte(checkedYAML), lookupIn(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string
	}{
		{"headers", "conflux.yaml:16:16: destinations[2].settings.headers: bad"},
		{"headers.X-A", "conflux.yaml:16:16: destinations[2].settings.headers.X-A: bad"},
		{"", "conflux.yaml:15:7: destinations[2].settings: bad"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			err := cfg.CheckDestinations(t.Context(), func(_ context.Context, _ string, settings map[string]any) error {
				if _, ok := settings["headers"]; ok {
					return &FieldError{Path: tc.path, Message: "bad"}
				}
				return nil
			})
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCheckDestinationsAccepts(t *testing.T) {
	cfg, err := parse("conflux.yaml", []byte(checkedYAML), lookupIn(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckDestinations(t.Context(), nil); err != nil {
		t.Errorf("nil check: %v, want every destination accepted", err)
	}
	n := 0
	if err := cfg.CheckDestinations(t.Context(), func(context.Context, string, map[string]any) error { n++; return nil }); err != nil || n != 4 {
		t.Errorf("accepting check: %v after %d calls, want nil after 4", err, n)
	}
}

// TestCheckDestinationsLoaded runs it as the server does, after Load: the
// file is named by the path Load was given.
func TestCheckDestinationsLoaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conflux.yaml")
	if err := os.WriteFile(path, []byte("destinations:\n  - id: d\n    type: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckDestinations(t.Context(), (&webhookCheck{}).check)
	if want := path + `:3:11: destinations[0].type: unknown destination type "nope" (known: webhook)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if fe, ok := errors.AsType[*FieldError](err); !ok || fe.Path != "destinations[0].type" || fe.File != path {
		t.Errorf("errors.AsType[*FieldError] = %+v, %v", fe, ok)
	}
}

// TestCheckDestinationsInCode: a Config built in code has no file or
// positions; its problems still have their paths.
func TestCheckDestinationsInCode(t *testing.T) {
	cfg := &Config{Destinations: []Destination{{ID: "a", Type: "webhook", Settings: map[string]any{"url": "u"}}, {ID: "b", Type: "x"}}}
	err := cfg.CheckDestinations(t.Context(), (&webhookCheck{}).check)
	if want := `destinations[1].type: unknown destination type "x" (known: webhook)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestCheckDestinationsCanceled: the error of a done ctx is not a problem
// with the file.
func TestCheckDestinationsCanceled(t *testing.T) {
	cfg, err := parse("conflux.yaml", []byte(checkedYAML), lookupIn(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = cfg.CheckDestinations(ctx, func(ctx context.Context, _ string, _ map[string]any) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if _, ok := errors.AsType[*LoadError](err); ok {
		t.Errorf("err = %v is a *LoadError, want the ctx error alone", err)
	}
}

// TestCheckDestinationsTooMany: the error is bounded as Load's is.
func TestCheckDestinationsTooMany(t *testing.T) {
	cfg := &Config{file: "big.yaml"}
	for i := range maxErrors + 5 {
		cfg.Destinations = append(cfg.Destinations, Destination{ID: fmt.Sprint(i), Type: "x"})
	}
	err := cfg.CheckDestinations(t.Context(), (&webhookCheck{}).check)
	le, ok := errors.AsType[*LoadError](err)
	if !ok || len(le.Errors) != maxErrors+1 {
		t.Fatalf("err = %T with %d lines, want a *LoadError of %d and a summary", err, len(le.Errors), maxErrors)
	}
	if got, want := le.Errors[maxErrors].Error(), "big.yaml: too many errors: 5 more not shown"; got != want {
		t.Errorf("last = %q, want %q", got, want)
	}
}
