package mixpanel

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
)

// Settings are a Mixpanel destination's settings, read from the workspace
// configuration's settings object (keys in parentheses).
type Settings struct {
	// ProjectID (project_id) is the numeric Mixpanel project id. Required
	// with service account credentials, which /import authenticates
	// against it; unused with api_secret or project_token, because Mixpanel
	// switches to service-account authentication whenever a request names
	// a project. Default: none.
	ProjectID string
	// ServiceAccountUsername and ServiceAccountSecret
	// (service_account_username, service_account_secret) are an Owner or
	// Admin service account of the project, sent to /import as HTTP Basic
	// credentials: Mixpanel's recommended authentication. Both or neither.
	// Default: none.
	ServiceAccountUsername string
	ServiceAccountSecret   secret
	// APISecret (api_secret) is the project's legacy API secret, sent to
	// /import as the Basic user with an empty password; an alternative to a
	// service account. Default: none.
	APISecret secret
	// ProjectToken (project_token) is the project token. /engage and
	// /groups need it in every record, so without it identify and group
	// calls are discarded (invalid_settings). With no other credential,
	// /import is authenticated with it too (Basic user, empty password).
	// It is not a secret in Mixpanel's model: browsers embed it. Default:
	// none.
	ProjectToken string
	// Region (region) picks the data residency of the project: "us"
	// (api.mixpanel.com), "eu" (api-eu.mixpanel.com) or "in"
	// (api-in.mixpanel.com). Default: "us".
	Region string
	// URL (url) replaces the region's base URL, e.g. a proxy or a test
	// server; an absolute http or https URL, to which /import, /engage and
	// /groups are appended. Default: none.
	URL string
	// BatchSize (batch_size) is how many events one Send carries, 1 to
	// 2000 (Mixpanel's per-request limit). Default: 1000.
	BatchSize int
	// Timeout (timeout) bounds each HTTP request, a Go duration such as
	// "10s", above zero. Default: 10s.
	Timeout time.Duration
	// ConsolidatedPageCalls (consolidated_page_calls) names every page
	// call "Loaded a Page" and every screen call "Loaded a Screen", the
	// page's name and category going into properties (what Segment's
	// Mixpanel destination does by default). When false, a named page
	// becomes "Viewed <category> <name> Page" and a named screen "Viewed
	// <name> Screen"; unnamed ones keep the consolidated names. Default:
	// true.
	ConsolidatedPageCalls bool
	// GroupKey (group_key) is the Mixpanel group key that group calls'
	// groupId values belong to (e.g. "company_id"), set up under Group
	// Analytics in the Mixpanel project. Without it, group calls are
	// discarded as unsupported. Default: none.
	GroupKey string
}

// DefaultSettings are the values settings start from before the
// workspace's are applied.
var DefaultSettings = Settings{
	Region:                "us",
	BatchSize:             1000,
	Timeout:               10 * time.Second,
	ConsolidatedPageCalls: true,
}

// maxBatch is Mixpanel's limit of events per /import request, and of
// updates per /engage or /groups request.
const maxBatch = 2000

// regionURLs are Mixpanel's ingestion hosts by data residency region.
var regionURLs = map[string]string{
	"us": "https://api.mixpanel.com",
	"eu": "https://api-eu.mixpanel.com",
	"in": "https://api-in.mixpanel.com",
}

// settingKeys are the keys a settings object may hold.
var settingKeys = []string{
	"api_secret", "batch_size", "consolidated_page_calls", "group_key", "project_id",
	"project_token", "region", "service_account_secret", "service_account_username",
	"timeout", "url",
}

// ParseSettings reads a workspace settings object over [DefaultSettings]
// and validates it. The error lists every problem, each naming its
// setting ("settings.region: …"); an unknown key is a problem too, so that
// a misspelt setting is not silently ignored.
func ParseSettings(m map[string]any) (Settings, error) {
	s := DefaultSettings
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("settings.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		if !slices.Contains(settingKeys, k) {
			bad(k, "unknown setting (known: %s)", strings.Join(settingKeys, ", "))
			continue
		}
		if v == nil {
			continue // an explicit null keeps the default
		}
		switch k {
		case "batch_size":
			n, err := intValue(v)
			switch {
			case err != nil:
				bad(k, "%v", err)
			case n < 1 || n > maxBatch:
				bad(k, "must be between 1 and %d (got %d)", maxBatch, n)
			default:
				s.BatchSize = n
			}
		case "timeout":
			str, ok := v.(string)
			if !ok {
				bad(k, "must be a duration string such as \"10s\" (got %T)", v)
				break
			}
			d, err := time.ParseDuration(strings.TrimSpace(str))
			switch {
			case err != nil:
				bad(k, "must be a duration such as \"10s\" (got %q)", str)
			case d <= 0:
				bad(k, "must be above zero (got %q)", str)
			default:
				s.Timeout = d
			}
		case "consolidated_page_calls":
			b, ok := v.(bool)
			if !ok {
				bad(k, "must be true or false (got %T)", v)
				break
			}
			s.ConsolidatedPageCalls = b
		case "project_id":
			id, err := projectID(v)
			if err != nil {
				bad(k, "%v", err)
				break
			}
			s.ProjectID = id
		default:
			str, ok := v.(string)
			if !ok {
				bad(k, "must be a string (got %T)", v)
				break
			}
			str = strings.TrimSpace(str)
			switch k {
			case "service_account_username":
				s.ServiceAccountUsername = str
			case "service_account_secret":
				s.ServiceAccountSecret = secret(str)
			case "api_secret":
				s.APISecret = secret(str)
			case "project_token":
				s.ProjectToken = str
			case "group_key":
				s.GroupKey = str
			case "region":
				r := strings.ToLower(str)
				if _, ok := regionURLs[r]; !ok {
					bad(k, "must be one of us, eu, in (got %q)", str)
					break
				}
				s.Region = r
			case "url":
				u, err := url.Parse(str)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					bad(k, "must be an absolute http or https URL (got %q)", str)
					break
				}
				if u.RawQuery != "" || u.Fragment != "" {
					bad(k, "must not have a query or fragment (got %q)", str)
					break
				}
				s.URL = strings.TrimRight(str, "/")
			}
		}
	}

	sa := s.ServiceAccountUsername != "" || s.ServiceAccountSecret != ""
	switch {
	case sa && s.ServiceAccountUsername == "":
		bad("service_account_username", "required with service_account_secret")
	case sa && s.ServiceAccountSecret == "":
		bad("service_account_secret", "required with service_account_username")
	case sa && s.APISecret != "":
		bad("api_secret", "set either a service account or api_secret, not both")
	case sa && s.ProjectID == "":
		bad("project_id", "required with a service account: /import authenticates service accounts against the project")
	case !sa && s.APISecret == "" && s.ProjectToken == "":
		errs = append(errs, errors.New("settings: no credentials: set service_account_username, service_account_secret and project_id (recommended), or api_secret, or project_token"))
	}
	if len(errs) > 0 {
		return Settings{}, fmt.Errorf("invalid mixpanel settings: %w", errors.Join(errs...))
	}
	return s, nil
}

// baseURL is where the ingestion endpoints are, without a trailing slash.
func (s Settings) baseURL() string {
	if s.URL != "" {
		return s.URL
	}
	return regionURLs[s.Region]
}

// importAuth returns the Basic credentials for /import and whether the
// request names the project (service accounts only).
func (s Settings) importAuth() (user, password string, withProject bool) {
	switch {
	case s.ServiceAccountUsername != "":
		return s.ServiceAccountUsername, string(s.ServiceAccountSecret), true
	case s.APISecret != "":
		return string(s.APISecret), "", false
	}
	return s.ProjectToken, "", false
}

// batchSize is the Type's BatchSize: the configured batch size, or the
// default when the settings do not parse (New then reports why).
func batchSize(m map[string]any) int {
	if v, ok := m["batch_size"]; ok && v != nil {
		if n, err := intValue(v); err == nil && n >= 1 {
			return min(n, maxBatch)
		}
	}
	return DefaultSettings.BatchSize
}

// intValue reads a whole number as YAML (int) or JSON (float64,
// json.Number) decoding gives it, or as a decimal string.
func intValue(v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		return int(n), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1e9 {
			return 0, fmt.Errorf("must be a whole number (got %v)", n)
		}
		return int(n), nil
	case json.Number:
		return intValue(string(n))
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			return 0, fmt.Errorf("must be a whole number (got %q)", n)
		}
		return i, nil
	}
	return 0, fmt.Errorf("must be a whole number (got %T)", v)
}

// projectID reads a project id, a positive whole number given as a number
// or a string of digits.
func projectID(v any) (string, error) {
	var s string
	switch n := v.(type) {
	case string:
		s = strings.TrimSpace(n)
	case float64:
		if n != math.Trunc(n) || n < 0 || n > 1<<53 {
			return "", fmt.Errorf("must be the numeric project id shown in the project's settings (got %v)", n)
		}
		s = strconv.FormatInt(int64(n), 10)
	default:
		i, err := intValue(v)
		if err != nil {
			return "", err
		}
		s = strconv.Itoa(i)
	}
	if s == "" {
		return "", nil
	}
	if i, err := strconv.ParseUint(s, 10, 63); err != nil || i == 0 {
		return "", fmt.Errorf("must be the numeric project id shown in the project's settings (got %q)", s)
	}
	return s, nil
}

// secret is a credential that never prints: a settings value formatted
// into a log line or an error shows "<redacted>".
type secret string

// String implements fmt.Stringer without revealing the value.
func (s secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString implements fmt.GoStringer, so that %#v hides it as well.
func (s secret) GoString() string { return s.String() }

// MarshalText implements encoding.TextMarshaler without revealing the value.
func (s secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
