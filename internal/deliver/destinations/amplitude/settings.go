package amplitude

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver/settings"
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

// knownSettings are the keys ParseSettings knows.
var knownSettings = []string{"api_key", "secret_key", "endpoint", "url", "batch_size", "timeout", "min_id_length"}

// ParseSettings reads a destination's settings object (JSON-compatible
// values, as the workspace configuration holds them: numbers may be
// float64, int or numeric strings, since a value from an environment
// reference is a string) over [DefaultSettings] and validates the result.
// An unknown key is an error, so that a misspelt setting is not silently
// ignored. All problems are reported together in one error wrapping
// [ErrInvalidSettings], each naming its setting.
func ParseSettings(m map[string]any) (Settings, error) {
	r := settings.New(m, knownSettings...)
	s := DefaultSettings()
	s.APIKey = config.Secret(strings.TrimSpace(r.Secret("api_key").Value()))
	s.SecretKey = r.Secret("secret_key")
	if e := r.String("endpoint", ""); e != "" {
		s.Endpoint = e
	}
	s.URL = r.String("url", s.URL)
	s.BatchSize = r.Int("batch_size", s.BatchSize)
	s.Timeout = r.Duration("timeout", s.Timeout)
	s.MinIDLength = r.Int("min_id_length", s.MinIDLength)
	if r.Has("min_id_length") && s.MinIDLength == 0 {
		r.Problemf("min_id_length", "must be from 1 to 1024, not 0 (leave it out for Amplitude's default of %d)", DefaultMinIDLength)
	}
	s.check(r)
	if err := r.Err(); err != nil {
		return Settings{}, fmt.Errorf("%w: %w", ErrInvalidSettings, err)
	}
	return s, nil
}

// Validate reports every problem of s, each naming its setting, joined
// with [errors.Join]; nil when s is usable.
func (s Settings) Validate() error {
	var r settings.Reader
	s.check(&r)
	return r.Err()
}

// check records every problem of s with r.
func (s Settings) check(r *settings.Reader) {
	if s.APIKey == "" {
		r.Problemf("api_key", "required (the Amplitude project's API key)")
	}
	if _, ok := endpointURL(s.Endpoint); !ok {
		r.Problemf("endpoint", "must be one of %q, %q, %q or %q, not %q",
			EndpointStandard, EndpointBatch, EndpointEU, EndpointEUBatch, s.Endpoint)
	}
	if s.URL != "" {
		r.CheckURL("url", s.URL, "http", "https")
	}
	r.CheckInt("batch_size", s.BatchSize, 1, MaxBatch)
	r.CheckDuration("timeout", s.Timeout, time.Nanosecond, MaxTimeout)
	if s.MinIDLength != 0 { // 0: not set
		r.CheckInt("min_id_length", s.MinIDLength, 1, 1024)
	}
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
