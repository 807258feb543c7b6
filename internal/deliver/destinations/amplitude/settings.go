package amplitude

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

// The values of the endpoint setting.
const (
	// EndpointStandard is the HTTP V2 API in Amplitude's US data center.
	EndpointStandard = "standard"
	// EndpointBatch is the Batch Event Upload API in the US data center:
	// higher per-user rates and larger requests, for backfills and busy
	// users, but events appear in Amplitude later.
	EndpointBatch = "batch"
	// EndpointEU is the HTTP V2 API in the EU data center.
	EndpointEU = "eu"
	// EndpointEUBatch is the Batch Event Upload API in the EU data center.
	EndpointEUBatch = "eu_batch"
)

// Defaults and limits of the settings.
const (
	// MaxBatch is the most events one request may carry (HTTP V2's
	// documented limit, applied to the Batch API too).
	MaxBatch = 2000
	// DefaultBatchSize is how many events one Send carries by default.
	DefaultBatchSize = 100
	// DefaultTimeout bounds one request to Amplitude by default.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout is the longest timeout the settings accept.
	MaxTimeout = 5 * time.Minute
	// DefaultMinIDLength is Amplitude's own minimum length of user_id and
	// device_id, which applies when min_id_length is not set.
	DefaultMinIDLength = 5
)

// ErrInvalidSettings is wrapped by every error [ParseSettings] returns.
var ErrInvalidSettings = errors.New("invalid amplitude settings")

// Settings configure one Amplitude destination. They are read from the
// destination's settings object by [ParseSettings]; the keys are the
// snake_case names given with each field.
type Settings struct {
	// APIKey (api_key) is the Amplitude project's API key. Required.
	APIKey config.Secret
	// SecretKey (secret_key) is the project's secret key. Optional and
	// unused: sending events needs only the API key. It is accepted so that
	// a configuration copied from Segment (which wants it for user
	// deletion) stays valid.
	SecretKey config.Secret
	// Endpoint (endpoint) picks the API and data center: "standard" (HTTP
	// V2, US), "batch" (Batch Event Upload, US), "eu" (HTTP V2, EU) or
	// "eu_batch" (Batch Event Upload, EU). Default: "standard".
	Endpoint string
	// URL (url) overrides the endpoint with a full http or https URL, e.g.
	// a proxy or a test server. A URL whose path ends in /batch gets the
	// Batch API's request-size limit (20 MB), any other HTTP V2's (1 MB).
	// Default: none.
	URL string
	// BatchSize (batch_size) is how many events one Send carries, 1 to
	// [MaxBatch]. Amplitude suggests at most 10 for Starter plans.
	// Default: 100.
	BatchSize int
	// Timeout (timeout) bounds each request, as a Go duration ("10s"),
	// greater than 0 and at most 5m. Default: 10s.
	Timeout time.Duration
	// MinIDLength (min_id_length) overrides Amplitude's minimum length of
	// user_id and device_id (sent as options.min_id_length), 1 to 1024.
	// Default: not set, which means Amplitude's 5.
	MinIDLength int
}

// DefaultSettings returns the settings that apply before the destination's
// own are read.
func DefaultSettings() Settings {
	return Settings{Endpoint: EndpointStandard, BatchSize: DefaultBatchSize, Timeout: DefaultTimeout}
}

// knownSettings lists the keys ParseSettings knows, for an error message.
const knownSettings = "api_key, secret_key, endpoint, url, batch_size, timeout, min_id_length"

// ParseSettings reads a destination's settings object (JSON-compatible
// values, as the workspace configuration holds them: numbers may be
// float64, int or numeric strings, since a value from an environment
// reference is a string) over [DefaultSettings] and validates the result.
// An unknown key is an error, so that a misspelt setting is not silently
// ignored. All problems are reported together in one error wrapping
// [ErrInvalidSettings], each naming its setting.
func ParseSettings(m map[string]any) (Settings, error) {
	s := DefaultSettings()
	var problems []string
	bad := func(key, format string, args ...any) {
		problems = append(problems, key+": "+fmt.Sprintf(format, args...))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		switch k {
		case "api_key", "secret_key", "endpoint", "url":
			str, ok := v.(string)
			if !ok && v != nil {
				bad(k, "must be a string, not %s", kind(v))
				continue
			}
			switch k {
			case "api_key":
				s.APIKey = config.Secret(strings.TrimSpace(str))
			case "secret_key":
				s.SecretKey = config.Secret(str)
			case "endpoint":
				if str != "" {
					s.Endpoint = str
				}
			case "url":
				s.URL = str
			}
		case "batch_size", "min_id_length":
			n, err := integer(v)
			if err != nil {
				bad(k, "%v", err)
				continue
			}
			if k == "batch_size" {
				s.BatchSize = n
			} else {
				s.MinIDLength = n
				if n == 0 {
					bad(k, "must be from 1 to 1024, not 0 (leave it out for Amplitude's default of %d)", DefaultMinIDLength)
				}
			}
		case "timeout":
			str, ok := v.(string)
			if !ok {
				bad(k, "must be a duration string such as \"10s\", not %s", kind(v))
				continue
			}
			d, err := time.ParseDuration(strings.TrimSpace(str))
			if err != nil {
				bad(k, "must be a duration such as \"10s\": %q is not one", str)
				continue
			}
			s.Timeout = d
		default:
			bad(k, "unknown setting (known: %s)", knownSettings)
		}
	}
	if err := s.Validate(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			if p := e.Error(); !slices.Contains(problems, p) {
				problems = append(problems, p)
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return Settings{}, fmt.Errorf("%w: %s", ErrInvalidSettings, strings.Join(problems, "; "))
	}
	return s, nil
}

// Validate reports every problem of s, each prefixed with its setting's
// key, joined with [errors.Join]; nil when s is usable.
func (s Settings) Validate() error {
	var errs []error
	if s.APIKey == "" {
		errs = append(errs, errors.New("api_key: required (the Amplitude project's API key)"))
	}
	if _, ok := endpointURL(s.Endpoint); !ok {
		errs = append(errs, fmt.Errorf("endpoint: must be one of %q, %q, %q or %q, not %q",
			EndpointStandard, EndpointBatch, EndpointEU, EndpointEUBatch, s.Endpoint))
	}
	if s.URL != "" {
		u, err := url.Parse(s.URL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("url: %q is not a URL", s.URL))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("url: must be an http or https URL, not %q", s.URL))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("url: %q has no host", s.URL))
		}
	}
	if s.BatchSize < 1 || s.BatchSize > MaxBatch {
		errs = append(errs, fmt.Errorf("batch_size: must be from 1 to %d, not %d", MaxBatch, s.BatchSize))
	}
	if s.Timeout <= 0 || s.Timeout > MaxTimeout {
		errs = append(errs, fmt.Errorf("timeout: must be more than 0 and at most %s, not %s", MaxTimeout, s.Timeout))
	}
	if s.MinIDLength < 0 || s.MinIDLength > 1024 {
		errs = append(errs, fmt.Errorf("min_id_length: must be from 1 to 1024, not %d", s.MinIDLength))
	}
	return errors.Join(errs...)
}

// endpointURL returns the URL of an endpoint setting.
func endpointURL(endpoint string) (string, bool) {
	switch endpoint {
	case EndpointStandard:
		return "https://api2.amplitude.com/2/httpapi", true
	case EndpointBatch:
		return "https://api2.amplitude.com/batch", true
	case EndpointEU:
		return "https://api.eu.amplitude.com/2/httpapi", true
	case EndpointEUBatch:
		return "https://api.eu.amplitude.com/batch", true
	}
	return "", false
}

// requestURL is where s sends its requests.
func (s Settings) requestURL() string {
	if s.URL != "" {
		return s.URL
	}
	u, _ := endpointURL(s.Endpoint)
	return u
}

// integer reads a whole number from a settings value.
func integer(v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		if n >= math.MinInt32 && n <= math.MaxInt32 {
			return int(n), nil
		}
	case float64:
		if n == math.Trunc(n) && math.Abs(n) <= math.MaxInt32 {
			return int(n), nil
		}
	case json.Number:
		return integer(string(n))
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(n))
		if err == nil {
			return i, nil
		}
		return 0, fmt.Errorf("must be a whole number, not %q", n)
	default:
		return 0, fmt.Errorf("must be a whole number, not %s", kind(v))
	}
	return 0, fmt.Errorf("must be a whole number, not %v", v)
}

// kind names the JSON type of a settings value for an error message.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64, int, int64, json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
