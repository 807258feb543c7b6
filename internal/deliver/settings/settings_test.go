package settings_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver/settings"
)

func TestAccessors(t *testing.T) {
	tests := []struct {
		name    string
		m       map[string]any
		null    bool                         // NullIsDefault
		read    func(r *settings.Reader) any // reads key "k"
		want    any                          // what read returns
		wantErr string                       // the whole error; "" for none
	}{
		// String
		{name: "string", m: map[string]any{"k": "v"}, read: str, want: "v"},
		{name: "string trimmed", m: map[string]any{"k": " v\n"}, read: str, want: "v"},
		{name: "string absent", m: nil, read: str, want: "def"},
		{name: "string a number", m: map[string]any{"k": 1.0}, read: str, want: "def",
			wantErr: "settings.k: must be a string, not a number"},
		{name: "string null", m: map[string]any{"k": nil}, read: str, want: "def",
			wantErr: "settings.k: must be a string, not null"},
		{name: "string null is the default", m: map[string]any{"k": nil}, null: true, read: str, want: "def"},

		// Secret
		{name: "secret as written", m: map[string]any{"k": " s3cret\n"}, read: secret, want: " s3cret\n"},
		{name: "secret absent", m: nil, read: secret, want: ""},
		{name: "secret a list", m: map[string]any{"k": []any{"s3cret"}}, read: secret, want: "",
			wantErr: "settings.k: must be a string, not a list"},

		// Bool
		{name: "bool", m: map[string]any{"k": true}, read: boolean, want: true},
		{name: "bool from the environment", m: map[string]any{"k": " false "}, read: boolean, want: false},
		{name: "bool absent", m: nil, read: boolean, want: true},
		{name: "bool text", m: map[string]any{"k": "maybe"}, read: boolean, want: true,
			wantErr: `settings.k: must be true or false, not "maybe"`},
		{name: "bool a number", m: map[string]any{"k": 1}, read: boolean, want: true,
			wantErr: "settings.k: must be true or false, not a number"},

		// Int
		{name: "int", m: map[string]any{"k": 5}, read: integer, want: 5},
		{name: "int64", m: map[string]any{"k": int64(-5)}, read: integer, want: -5},
		{name: "uint64", m: map[string]any{"k": uint64(5)}, read: integer, want: 5},
		{name: "whole float64", m: map[string]any{"k": 500.0}, read: integer, want: 500},
		{name: "json.Number", m: map[string]any{"k": json.Number("20")}, read: integer, want: 20},
		{name: "int from the environment", m: map[string]any{"k": " 50 "}, read: integer, want: 50},
		{name: "int absent", m: nil, read: integer, want: 7},
		{name: "fractional float64", m: map[string]any{"k": 2.5}, read: integer, want: 7,
			wantErr: "settings.k: must be a whole number, not 2.5"},
		{name: "huge float64", m: map[string]any{"k": 1e300}, read: integer, want: 7,
			wantErr: "settings.k: 1e+300 is out of range"},
		{name: "huge string", m: map[string]any{"k": "99999999999999999999"}, read: integer, want: 7,
			wantErr: "settings.k: 99999999999999999999 is out of range"},
		{name: "int text", m: map[string]any{"k": "many"}, read: integer, want: 7,
			wantErr: `settings.k: must be a whole number, not "many"`},
		{name: "int a boolean", m: map[string]any{"k": true}, read: integer, want: 7,
			wantErr: "settings.k: must be a whole number, not a boolean"},

		// Duration
		{name: "duration", m: map[string]any{"k": "250ms"}, read: duration, want: 250 * time.Millisecond},
		{name: "duration trimmed", m: map[string]any{"k": " 2s "}, read: duration, want: 2 * time.Second},
		{name: "duration absent", m: nil, read: duration, want: 10 * time.Second},
		{name: "duration a number", m: map[string]any{"k": 10.0}, read: duration, want: 10 * time.Second,
			wantErr: `settings.k: must be a duration string such as "10s", not a number`},
		{name: "duration without a unit", m: map[string]any{"k": "10"}, read: duration, want: 10 * time.Second,
			wantErr: `settings.k: must be a duration such as "10s": "10" is not one`},

		// StringMap
		{name: "string map", m: map[string]any{"k": map[string]any{"A": "1", "B": "2"}}, read: stringMap,
			want: map[string]string{"A": "1", "B": "2"}},
		{name: "string map absent", m: nil, read: stringMap, want: map[string]string(nil)},
		{name: "string map a string", m: map[string]any{"k": "A: 1"}, read: stringMap, want: map[string]string(nil),
			wantErr: "settings.k: must be a mapping of names to strings, not a string"},
		{name: "string map entry a number", m: map[string]any{"k": map[string]any{"A": "1", "B": 2}}, read: stringMap,
			want: map[string]string{"A": "1"}, wantErr: "settings.k.B: must be a string, not a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := settings.New(tc.m)
			r.NullIsDefault = tc.null
			got := tc.read(r)
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			checkErr(t, r.Err(), tc.wantErr)
		})
	}
}

func str(r *settings.Reader) any      { return r.String("k", "def") }
func secret(r *settings.Reader) any   { return r.Secret("k").Value() }
func boolean(r *settings.Reader) any  { return r.Bool("k", true) }
func integer(r *settings.Reader) any  { return r.Int("k", 7) }
func duration(r *settings.Reader) any { return r.Duration("k", 10*time.Second) }
func stringMap(r *settings.Reader) any {
	return r.StringMap("k")
}

func TestChecks(t *testing.T) {
	tests := []struct {
		name    string
		check   func(r *settings.Reader)
		wantErr string
	}{
		{"int in range", func(r *settings.Reader) { r.CheckInt("k", 1, 1, 10) }, ""},
		{"int at the top", func(r *settings.Reader) { r.CheckInt("k", 10, 1, 10) }, ""},
		{"int below", func(r *settings.Reader) { r.CheckInt("k", 0, 1, 10) }, "settings.k: must be from 1 to 10, not 0"},
		{"int above", func(r *settings.Reader) { r.CheckInt("k", 11, 1, 10) }, "settings.k: must be from 1 to 10, not 11"},
		{"int without a top", func(r *settings.Reader) { r.CheckInt("k", -1, 0, math.MaxInt) }, "settings.k: must be at least 0, not -1"},

		{"duration in range", func(r *settings.Reader) { r.CheckDuration("k", time.Second, time.Millisecond, time.Minute) }, ""},
		{"duration below", func(r *settings.Reader) { r.CheckDuration("k", 0, time.Millisecond, time.Minute) },
			"settings.k: must be at least 1ms and at most 1m0s, not 0s"},
		{"duration more than 0", func(r *settings.Reader) { r.CheckDuration("k", -time.Second, time.Nanosecond, 5*time.Minute) },
			"settings.k: must be more than 0 and at most 5m0s, not -1s"},
		{"duration without a top", func(r *settings.Reader) { r.CheckDuration("k", 0, time.Nanosecond, math.MaxInt64) },
			"settings.k: must be more than 0, not 0s"},

		{"url", func(r *settings.Reader) { r.CheckURL("k", "https://example.com/in?x=1", "http", "https") }, ""},
		{"url unparsable", func(r *settings.Reader) { r.CheckURL("k", "http://[::1", "http", "https") },
			`settings.k: "http://[::1" is not a URL`},
		{"url scheme", func(r *settings.Reader) { r.CheckURL("k", "ftp://u:hunter2@example.com/x", "http", "https") },
			`settings.k: must be an http or https URL, not "ftp://u:xxxxx@example.com/x"`},
		{"url relative", func(r *settings.Reader) { r.CheckURL("k", "example.com/in", "http", "https") },
			`settings.k: must be an http or https URL, not "example.com/in"`},
		{"url without a host", func(r *settings.Reader) { r.CheckURL("k", "http:///x", "http", "https") },
			`settings.k: "http:///x" has no host`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r settings.Reader // the zero Reader, as a Validate method uses it
			tc.check(&r)
			checkErr(t, r.Err(), tc.wantErr)
		})
	}
}

func TestErr(t *testing.T) {
	tests := []struct {
		name  string
		m     map[string]any
		known []string
		do    func(r *settings.Reader)
		want  []string // the problems, in order
	}{
		{name: "no problems", m: map[string]any{"url": "x"}, known: []string{"url"}},
		{name: "unknown keys, sorted", m: map[string]any{"url": "x", "zeta": 1, "alpha": 2}, known: []string{"url", "timeout"},
			want: []string{
				"settings.alpha: unknown setting (known: url, timeout)",
				"settings.zeta: unknown setting (known: url, timeout)",
			}},
		{name: "no known keys: no check", m: map[string]any{"anything": 1}},
		{name: "sorted by key, the settings as a whole first", do: func(r *settings.Reader) {
			r.Problemf("timeout", "bad")
			r.Problemf("", "no credentials")
			r.Problemf("batch_size", "bad")
		}, want: []string{"settings: no credentials", "settings.batch_size: bad", "settings.timeout: bad"}},
		{name: "the first problem of a key is kept", m: map[string]any{"stream": true}, do: func(r *settings.Reader) {
			if r.String("stream", "") == "" {
				r.Problemf("stream", "required")
			}
		}, want: []string{"settings.stream: must be a string, not a boolean"}},
		{name: "a nil problem is none", do: func(r *settings.Reader) { r.Problem("k", nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := settings.New(tc.m, tc.known...)
			if tc.do != nil {
				tc.do(r)
			}
			checkErr(t, r.Err(), strings.Join(tc.want, "\n"))
		})
	}
}

func TestErrorUnwraps(t *testing.T) {
	cause := errors.New("required")
	r := settings.New(nil)
	r.Problem("subject", cause)
	err := r.Err()
	e, ok := errors.AsType[*settings.Error](err)
	if !ok {
		t.Fatalf("%v holds no *settings.Error", err)
	}
	if e.Key != "subject" || !errors.Is(err, cause) {
		t.Errorf("got key %q, errors.Is %v; want subject, true", e.Key, errors.Is(err, cause))
	}
}

// TestSecretNeverPrints proves that a secret read from the settings shows
// in no format, nor in JSON.
func TestSecretNeverPrints(t *testing.T) {
	s := settings.New(map[string]any{"token": "t0ken"}).Secret("token")
	holder := struct{ Token any }{s}
	js, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%s %q %x %X %#v %+v", s, s, s, s, s, holder), string(js),
	} {
		if strings.Contains(out, "t0ken") || strings.Contains(out, fmt.Sprintf("%x", "t0ken")) {
			t.Errorf("the secret shows in %s", out)
		}
	}
	if s.Value() != "t0ken" {
		t.Errorf("Value() = %q, want the secret", s.Value())
	}
}

// checkErr fails t unless err's message is want ("" for no error).
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want %q", want)
	case want != "" && err.Error() != want:
		t.Errorf("error %q, want %q", err, want)
	}
}

func ExampleReader() {
	m := map[string]any{"url": "https://hooks.example.com/in", "batch_size": "5000", "timeout": 10.0, "methd": "PUT"}
	r := settings.New(m, "url", "batch_size", "timeout")
	url := r.String("url", "")
	r.CheckURL("url", url, "http", "https")
	batch := r.Int("batch_size", 1) // "5000": from ${BATCH_SIZE}
	r.CheckInt("batch_size", batch, 1, 1000)
	timeout := r.Duration("timeout", 10*time.Second)
	fmt.Println(url, batch, timeout)
	fmt.Println(r.Err())
	// Output:
	// https://hooks.example.com/in 5000 10s
	// settings.batch_size: must be from 1 to 1000, not 5000
	// settings.methd: unknown setting (known: url, batch_size, timeout)
	// settings.timeout: must be a duration string such as "10s", not a number
}
