package redisstream

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

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
			var u string
			u, err = stringValue(v)
			s.URL = URL(u)
		case "stream":
			s.Stream, err = stringValue(v)
		case "max_len":
			s.MaxLen, err = intValue(v)
		case "timeout":
			s.Timeout, err = durationValue(v)
		default:
			err = errors.New("unknown setting (known: url, stream, max_len, timeout)")
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
	if _, err := s.options(); err != nil {
		add("url", err)
	}
	if s.Stream == "" {
		add("stream", errors.New("required"))
	} else if _, err := parseKey(s.Stream); err != nil {
		add("stream", err)
	}
	if s.MaxLen < 0 {
		add("max_len", fmt.Errorf("must be positive, or 0 for no trimming; got %d", s.MaxLen))
	}
	if s.Timeout <= 0 {
		add("timeout", fmt.Errorf("must be positive, got %s", s.Timeout))
	}
	return out
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
func parseKey(s string) ([]keyPart, error) {
	var parts []keyPart
	rest := s
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			parts = append(parts, keyPart{literal: rest})
			break
		}
		if i > 0 {
			parts = append(parts, keyPart{literal: rest[:i]})
		}
		end := strings.Index(rest[i:], "}}")
		if end < 0 {
			return nil, errors.New(`"{{" without "}}"`)
		}
		name := strings.TrimSpace(rest[i+2 : i+end])
		switch name {
		case "source", "type":
		default:
			return nil, fmt.Errorf("unknown placeholder {{%s}}: want {{source}} or {{type}}", name)
		}
		parts = append(parts, keyPart{placeholder: name})
		rest = rest[i+end+2:]
	}
	return parts, nil
}

// keyPart is literal text or a placeholder of a stream setting.
type keyPart struct {
	literal     string
	placeholder string // "source" or "type"; "" for a literal
}

// renderKey returns the stream key for an event of source and type typ.
func renderKey(parts []keyPart, source, typ string) string {
	if len(parts) == 1 && parts[0].placeholder == "" {
		return parts[0].literal
	}
	var b strings.Builder
	for _, p := range parts {
		switch p.placeholder {
		case "source":
			b.WriteString(source)
		case "type":
			b.WriteString(typ)
		default:
			b.WriteString(p.literal)
		}
	}
	return b.String()
}

func stringValue(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %s", typeName(v))
	}
	return s, nil
}

func intValue(v any) (int64, error) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, fmt.Errorf("want a whole number, got %v", n)
		}
		return int64(n), nil
	case string: // from an environment reference
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("want a whole number, got %q", n)
		}
		return i, nil
	}
	return 0, fmt.Errorf("want a whole number, got %s", typeName(v))
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
