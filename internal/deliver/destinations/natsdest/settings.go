package natsdest

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver/settings"
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

// Secret is a credential that never prints, so that it does not end up in
// logs or error messages: the workspace's [config.Secret].
type Secret = config.Secret

// credsMarkers are the sections a NATS credentials file holds.
const (
	credsJWTMarker  = "BEGIN NATS USER JWT"
	credsSeedMarker = "BEGIN USER NKEY SEED"
)

// knownSettings are the keys ParseSettings knows.
var knownSettings = []string{"url", "subject", "jetstream", "credentials", "token", "user", "password", "timeout"}

// ParseSettings reads a destination's settings, as the workspace holds
// them, over [DefaultSettings], with a [settings.Reader]: a value taken
// from the environment is a string, so jetstream may be "true" or
// "false". An unknown setting is an error. All problems are reported
// together, each starting with the setting's name.
func ParseSettings(m map[string]any) (Settings, error) {
	r := settings.New(m, knownSettings...)
	s := DefaultSettings
	s.URL = r.String("url", s.URL)
	s.Subject = r.String("subject", s.Subject)
	s.JetStream = r.Bool("jetstream", s.JetStream)
	s.Credentials = r.Secret("credentials")
	s.Token = r.Secret("token")
	s.User = r.String("user", s.User)
	s.Password = r.Secret("password")
	s.Timeout = r.Duration("timeout", s.Timeout)
	s.check(r)
	return s, r.Err()
}

// Validate reports every problem of s, each starting with the setting's
// name.
func (s Settings) Validate() error {
	var r settings.Reader
	s.check(&r)
	return r.Err()
}

// check records every problem of s with r.
func (s Settings) check(r *settings.Reader) {
	if _, err := serverURLs(s.URL); err != nil {
		r.Problem("url", err)
	}
	if s.Subject == "" {
		r.Problemf("subject", "required")
	} else if _, err := parseSubject(s.Subject); err != nil {
		r.Problem("subject", err)
	}
	r.CheckDuration("timeout", s.Timeout, time.Nanosecond, math.MaxInt64)
	if s.Password != "" && s.User == "" {
		r.Problemf("password", "needs user")
	}
	methods := 0
	for _, set := range []bool{s.Credentials != "", s.Token != "", s.User != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		r.Problemf("credentials", "credentials, token and user/password are alternatives: set one")
	}
	if s.Credentials != "" {
		if _, err := s.credentials(); err != nil {
			r.Problem("credentials", err)
		}
	}
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
