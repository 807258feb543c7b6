package natsdest

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Settings are a nats destination's settings.
type Settings struct {
	// URL is the NATS server, or a comma-separated list of a cluster's
	// servers: nats://, tls://, ws:// or wss://. Credentials may be given
	// in the URL (nats://user:password@host:4222) or in the settings below.
	// Default: nats://127.0.0.1:4222.
	URL string
	// Subject is the subject each event is published to; {{source}} and
	// {{type}} are replaced by the event's source id and type (see the
	// package documentation). Required.
	Subject string
	// JetStream publishes through JetStream and waits for the stream's
	// acknowledgement, so that a delivered event is stored; a stream must
	// capture the subject. Default: false (core NATS, flushed).
	JetStream bool
	// Credentials is a NATS credentials file (a user JWT and its NKey
	// seed): its path, or its contents. Default: none.
	Credentials Secret
	// Token is a token to authenticate with. Default: none.
	Token Secret
	// User and Password authenticate with a user name and password.
	// Default: none.
	User     string
	Password Secret
	// Timeout bounds one Send: the publishes and the flush or the acks.
	// Default: 5s.
	Timeout time.Duration
}

// DefaultSettings are the settings a destination starts from before its
// own are applied.
var DefaultSettings = Settings{
	URL:     "nats://127.0.0.1:4222",
	Timeout: 5 * time.Second,
}

// Secret is a setting that never prints its value, so that credentials do
// not end up in logs or error messages.
type Secret string

// String returns a mask, or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "xxxxx"
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalText writes the mask, for encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// credsMarkers are the sections a NATS credentials file holds.
const (
	credsJWTMarker  = "BEGIN NATS USER JWT"
	credsSeedMarker = "BEGIN USER NKEY SEED"
)

// ParseSettings reads a destination's settings, as the workspace holds
// them (JSON values: strings, booleans, float64 numbers; a value taken
// from the environment is a string), over [DefaultSettings]. An unknown
// setting is an error. All problems are reported together, each starting
// with the setting's name.
func ParseSettings(m map[string]any) (Settings, error) {
	s := DefaultSettings
	var errs []error
	failed := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		var err error
		switch k {
		case "url":
			s.URL, err = stringValue(v)
		case "subject":
			s.Subject, err = stringValue(v)
		case "jetstream":
			s.JetStream, err = boolValue(v)
		case "credentials":
			var c string
			c, err = stringValue(v)
			s.Credentials = Secret(c)
		case "token":
			var c string
			c, err = stringValue(v)
			s.Token = Secret(c)
		case "user":
			s.User, err = stringValue(v)
		case "password":
			var c string
			c, err = stringValue(v)
			s.Password = Secret(c)
		case "timeout":
			s.Timeout, err = durationValue(v)
		default:
			err = errors.New("unknown setting (known: url, subject, jetstream, credentials, token, user, password, timeout)")
		}
		if err != nil {
			failed[k] = true
			errs = append(errs, fmt.Errorf("settings.%s: %w", k, err))
		}
	}
	for _, p := range s.problems() {
		if !failed[p.field] {
			errs = append(errs, p)
		}
	}
	return s, errors.Join(errs...)
}

// Validate reports every problem of s, each starting with the setting's
// name.
func (s Settings) Validate() error {
	var errs []error
	for _, p := range s.problems() {
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// problem is what is wrong with one setting.
type problem struct {
	field string
	err   error
}

func (p problem) Error() string { return "settings." + p.field + ": " + p.err.Error() }
func (p problem) Unwrap() error { return p.err }

func (s Settings) problems() []problem {
	var out []problem
	add := func(field string, err error) { out = append(out, problem{field, err}) }
	if _, err := serverURLs(s.URL); err != nil {
		add("url", err)
	}
	if s.Subject == "" {
		add("subject", errors.New("required"))
	} else if _, err := parseSubject(s.Subject); err != nil {
		add("subject", err)
	}
	if s.Timeout <= 0 {
		add("timeout", fmt.Errorf("must be positive, got %s", s.Timeout))
	}
	if s.Password != "" && s.User == "" {
		add("password", errors.New("needs user"))
	}
	methods := 0
	for _, set := range []bool{s.Credentials != "", s.Token != "", s.User != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		add("credentials", errors.New("credentials, token and user/password are alternatives: set one"))
	}
	if s.Credentials != "" {
		if _, err := s.credentials(); err != nil {
			add("credentials", err)
		}
	}
	return out
}

// credentials returns the contents of the credentials setting, reading
// the file it names unless it holds the contents itself.
func (s Settings) credentials() ([]byte, error) {
	c := []byte(s.Credentials.Value())
	if !strings.Contains(string(c), credsJWTMarker) {
		var err error
		if c, err = os.ReadFile(string(c)); err != nil {
			// The path is not secret, and the error names it.
			return nil, fmt.Errorf("reading the credentials file: %w", err)
		}
	}
	if !strings.Contains(string(c), credsJWTMarker) || !strings.Contains(string(c), credsSeedMarker) {
		return nil, errors.New("not a NATS credentials file: want a user JWT and an NKey seed")
	}
	return c, nil
}

// serverURLs splits and checks the url setting. Errors never repeat a
// URL, which may hold a password.
func serverURLs(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, errors.New("required")
	}
	var out []string
	for i, raw := range strings.Split(v, ",") {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil || raw == "" {
			return nil, fmt.Errorf("server %d is not a URL", i+1)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("server %d: scheme %q: want nats, tls, ws or wss", i+1, u.Scheme)
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("server %d has no host", i+1)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("server %d: port %q is not a port number", i+1, p)
			}
		}
		out = append(out, raw)
	}
	return out, nil
}

func stringValue(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %s", typeName(v))
	}
	return s, nil
}

func boolValue(v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string: // from an environment reference
		if p, err := strconv.ParseBool(b); err == nil {
			return p, nil
		}
		return false, fmt.Errorf("want true or false, got %q", b)
	}
	return false, fmt.Errorf("want true or false, got %s", typeName(v))
}

func durationValue(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf(`want a duration string such as "5s" or "500ms", got %s`, typeName(v))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`%q is not a duration: write it like "5s" or "500ms"`, s)
	}
	return d, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int, int64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
