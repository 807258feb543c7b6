package redisstream

import (
	"errors"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver/settings"
	"github.com/redis/go-redis/v9"
)

// Settings are a redis_stream destination's settings.
type Settings struct {
	// URL is the Redis server: redis://[user:password@]host:port/db,
	// rediss:// for TLS, or unix:///path/to/socket; go-redis's query
	// options (?protocol=2, …) are accepted.
	// Default: redis://127.0.0.1:6379/0.
	URL URL
	// Stream is the key of the stream events are appended to; {{source}}
	// and {{type}} are replaced by the event's source id and type.
	// Required.
	Stream string
	// MaxLen, when positive, trims the stream to about this many entries
	// at every append (MAXLEN ~). Default: 0, no trimming.
	MaxLen int64
	// Timeout bounds one Send: connecting, writing the pipeline and
	// reading its replies. Default: 5s.
	Timeout time.Duration
}

// DefaultSettings are the settings a destination starts from before its
// own are applied.
var DefaultSettings = Settings{
	URL:     "redis://127.0.0.1:6379/0",
	Timeout: 5 * time.Second,
}

// URL is a Redis URL, which may hold a password: it prints with the
// password masked.
type URL string

// String returns the URL with its password masked.
func (u URL) String() string {
	p, err := url.Parse(string(u))
	if err != nil {
		return "(not a URL)"
	}
	return p.Redacted()
}

// GoString is String, for %#v.
func (u URL) GoString() string { return u.String() }

// knownSettings are the keys ParseSettings knows.
var knownSettings = []string{"url", "stream", "max_len", "timeout"}

// ParseSettings reads a destination's settings, as the workspace holds
// them, over [DefaultSettings], with a [settings.Reader]: a value taken
// from the environment is a string, so max_len may be a number or a
// string of digits. An unknown setting is an error. All problems are
// reported together, each starting with the setting's name.
func ParseSettings(m map[string]any) (Settings, error) {
	r := settings.New(m, knownSettings...)
	s := DefaultSettings
	s.URL = URL(r.String("url", string(s.URL)))
	s.Stream = r.String("stream", s.Stream)
	s.MaxLen = int64(r.Int("max_len", int(s.MaxLen)))
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
	if _, err := s.options(); err != nil {
		r.Problem("url", err)
	}
	if s.Stream == "" {
		r.Problemf("stream", "required")
	} else if _, err := parseKey(s.Stream); err != nil {
		r.Problem("stream", err)
	}
	r.CheckInt("max_len", int(s.MaxLen), 0, math.MaxInt)
	r.CheckDuration("timeout", s.Timeout, time.Nanosecond, math.MaxInt64)
}

// options parses the URL into go-redis options. Its errors never repeat
// the URL, which may hold a password.
func (s Settings) options() (*redis.Options, error) {
	raw := string(s.URL)
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("required")
	}
	if _, err := url.Parse(raw); err != nil {
		return nil, errors.New("not a URL: write it like redis://host:6379/0")
	}
	return redis.ParseURL(raw)
}

// parseKey parses a stream setting.
func parseKey(s string) (settings.Template, error) { return settings.ParseTemplate(s) }

// renderKey returns the stream key for an event of source and type typ.
func renderKey(key settings.Template, source, typ string) string { return key.Render(source, typ, nil) }
