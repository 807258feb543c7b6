// Package settings reads a destination's settings object — the
// map[string]any that the workspace configuration holds for it — into
// typed values, and collects every problem it finds, each naming its
// setting ("settings.batch_size: must be from 1 to 1000, not 0").
//
// Every destination package under internal/deliver/destinations reads its
// settings with a [Reader], so that all of them accept the same value
// shapes and word their problems alike:
//
//   - the values are those YAML or JSON decoding gives: string, bool,
//     float64, int or int64, json.Number, []any and map[string]any;
//   - a value taken from an environment reference (${BATCH_SIZE}) is a
//     string, so numbers and booleans are accepted as strings too;
//   - a number must be whole; a duration is a Go duration string ("10s");
//   - a key the destination does not know is a problem, so that a
//     misspelt setting is not silently ignored;
//   - credentials are [config.Secret] values, which never print.
//
// It deliberately knows nothing about any one destination: which settings
// are required, which go together, and what a URL or a subject must look
// like beyond its scheme and host are the destination's to check, which it
// reports through [Reader.Problem] so that they come out with the rest.
package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
)

// Error is the problem with one setting. Its message starts with
// "settings.<key>: ", or "settings: " for a problem of the settings as a
// whole.
type Error struct {
	// Key is the setting, such as "batch_size", or a path into one, such
	// as "headers.X-Team"; "" for the settings as a whole.
	Key string
	// Err is what is wrong with it.
	Err error
}

// Error returns "settings.<key>: <problem>".
func (e *Error) Error() string {
	if e.Key == "" {
		return "settings: " + e.Err.Error()
	}
	return "settings." + e.Key + ": " + e.Err.Error()
}

// Unwrap returns the problem without the setting's name.
func (e *Error) Unwrap() error { return e.Err }

// Reader reads one settings object. Its accessors return a setting's value,
// or the default given when the key is absent or its value is unusable,
// and record a problem for an unusable one instead of returning an error;
// [Reader.Err] reports them all. Only the first problem of each key is
// kept: a later one usually follows from it.
//
// The zero Reader reads an empty settings object, which suits a Validate
// method that checks a Settings value built in code. A Reader is not safe
// for concurrent use.
type Reader struct {
	// NullIsDefault makes a null value read as if its key were absent, so
	// that it keeps the default. When false (the default) a null is a
	// problem: the setting must have a value of its type.
	NullIsDefault bool

	m        map[string]any
	problems map[string]error
}

// New returns a Reader of m. When known keys are given, every other key of
// m is a problem ("unknown setting (known: url, headers, …)"); with none,
// no key is checked, which suits reading one setting on its own.
func New(m map[string]any, known ...string) *Reader {
	r := &Reader{m: m}
	if len(known) > 0 {
		for k := range m {
			if !slices.Contains(known, k) {
				r.Problemf(k, "unknown setting (known: %s)", strings.Join(known, ", "))
			}
		}
	}
	return r
}

// Problem records err as the problem of key, unless err is nil or key
// already has one.
func (r *Reader) Problem(key string, err error) {
	if err == nil {
		return
	}
	if r.problems == nil {
		r.problems = map[string]error{}
	}
	if _, ok := r.problems[key]; !ok {
		r.problems[key] = err
	}
}

// Problemf records a problem of key formatted as with [fmt.Errorf], unless
// key already has one.
func (r *Reader) Problemf(key, format string, args ...any) {
	r.Problem(key, fmt.Errorf(format, args...))
}

// Err returns every problem recorded, each an [*Error], joined with
// [errors.Join] in the order of their keys; nil when there are none.
func (r *Reader) Err() error {
	keys := make([]string, 0, len(r.problems))
	for k := range r.problems {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	errs := make([]error, len(keys))
	for i, k := range keys {
		errs[i] = &Error{Key: k, Err: r.problems[k]}
	}
	return errors.Join(errs...)
}

// Has reports whether the settings give key a value. A null counts as one
// unless [Reader.NullIsDefault] is set.
func (r *Reader) Has(key string) bool {
	_, ok := r.value(key)
	return ok
}

func (r *Reader) value(key string) (any, bool) {
	v, ok := r.m[key]
	if ok && v == nil && r.NullIsDefault {
		return nil, false
	}
	return v, ok
}

// String returns the string setting key without surrounding white space,
// or def when it is absent or not a string.
func (r *Reader) String(key, def string) string {
	v, ok := r.value(key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		r.Problemf(key, "must be a string, not %s", kind(v))
		return def
	}
	return strings.TrimSpace(s)
}

// Secret returns the credential key exactly as written (it may be a file's
// contents, whose last newline belongs to it), or "" when it is absent or
// not a string. A problem never repeats the value.
func (r *Reader) Secret(key string) config.Secret {
	v, ok := r.value(key)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.Problemf(key, "must be a string, not %s", kind(v))
		return ""
	}
	return config.Secret(s)
}

// Bool returns the boolean setting key, or def when it is absent or not a
// boolean. A string that [strconv.ParseBool] accepts ("true", "false",
// "1", "0", …) is one.
func (r *Reader) Bool(key string, def bool) bool {
	v, ok := r.value(key)
	if !ok {
		return def
	}
	switch b := v.(type) {
	case bool:
		return b
	case string:
		if p, err := strconv.ParseBool(strings.TrimSpace(b)); err == nil {
			return p
		}
		r.Problemf(key, "must be true or false, not %q", b)
	default:
		r.Problemf(key, "must be true or false, not %s", kind(v))
	}
	return def
}

// Int returns the whole-number setting key, or def when it is absent or not
// a whole number. An int, an int64, a float64 without a fraction, a
// json.Number or a decimal string is one. [Reader.CheckInt] checks its
// range.
func (r *Reader) Int(key string, def int) int {
	v, ok := r.value(key)
	if !ok {
		return def
	}
	n, err := toInt(v)
	if err != nil {
		r.Problem(key, err)
		return def
	}
	return n
}

// toInt reads a whole number from a settings value.
func toInt(v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		if int64(int(n)) == n {
			return int(n), nil
		}
	case uint64:
		if n <= math.MaxInt {
			return int(n), nil
		}
	case float64:
		if n != math.Trunc(n) {
			return 0, fmt.Errorf("must be a whole number, not %v", n)
		}
		if math.Abs(n) <= 1<<53 {
			return int(n), nil
		}
	case json.Number:
		return toInt(string(n))
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 0)
		if err == nil {
			return int(i), nil
		}
		if errors.Is(err, strconv.ErrRange) {
			break
		}
		return 0, fmt.Errorf("must be a whole number, not %q", n)
	default:
		return 0, fmt.Errorf("must be a whole number, not %s", kind(v))
	}
	return 0, fmt.Errorf("%v is out of range", v)
}

// Duration returns the duration setting key, a Go duration string such as
// "10s" or "500ms", or def when it is absent or not a duration.
// [Reader.CheckDuration] checks its range.
func (r *Reader) Duration(key string, def time.Duration) time.Duration {
	v, ok := r.value(key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		r.Problemf(key, `must be a duration string such as "10s", not %s`, kind(v))
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		r.Problemf(key, `must be a duration such as "10s": %q is not one`, s)
		return def
	}
	return d
}

// StringMap returns the setting key, a mapping of names to strings (such
// as HTTP headers), or nil when it is absent. A value that is not a
// mapping is a problem of key; an entry whose value is not a string is a
// problem of "key.name", and is left out.
func (r *Reader) StringMap(key string) map[string]string {
	v, ok := r.value(key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.Problemf(key, "must be a mapping of names to strings, not %s", kind(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for name, v := range m {
		s, ok := v.(string)
		if !ok {
			r.Problemf(key+"."+name, "must be a string, not %s", kind(v))
			continue
		}
		out[name] = s
	}
	return out
}

// CheckInt records a problem of key unless min <= n <= max. Pass
// math.MaxInt as max for no upper bound.
func (r *Reader) CheckInt(key string, n, min, max int) {
	if n >= min && n <= max {
		return
	}
	if max == math.MaxInt {
		r.Problemf(key, "must be at least %d, not %d", min, n)
		return
	}
	r.Problemf(key, "must be from %d to %d, not %d", min, max, n)
}

// CheckDuration records a problem of key unless min <= d <= max. Pass
// time.Nanosecond as min for "more than 0", and math.MaxInt64 as max for
// no upper bound.
func (r *Reader) CheckDuration(key string, d, min, max time.Duration) {
	if d >= min && d <= max {
		return
	}
	var bounds []string
	switch {
	case min == time.Nanosecond:
		bounds = append(bounds, "more than 0")
	case min > math.MinInt64:
		bounds = append(bounds, "at least "+min.String())
	}
	if max < math.MaxInt64 {
		bounds = append(bounds, "at most "+max.String())
	}
	r.Problemf(key, "must be %s, not %s", strings.Join(bounds, " and "), d)
}

// CheckURL records a problem of key unless raw is an absolute URL with a
// host and one of schemes, such as "http" and "https". A problem shows the
// URL with any password masked.
func (r *Reader) CheckURL(key, raw string, schemes ...string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		r.Problemf(key, "%q is not a URL", raw)
	case !slices.Contains(schemes, u.Scheme):
		r.Problemf(key, "must be an %s URL, not %q", strings.Join(schemes, " or "), u.Redacted())
	case u.Host == "":
		r.Problemf(key, "%q has no host", u.Redacted())
	}
}

// kind names the type of a settings value for a problem.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64, int, int64, uint64, json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
