package mixpanel

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver/settings"
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
	ServiceAccountSecret   config.Secret
	// APISecret (api_secret) is the project's legacy API secret, sent to
	// /import as the Basic user with an empty password; an alternative to a
	// service account. Default: none.
	APISecret config.Secret
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
// a misspelt setting is not silently ignored. A null keeps the default.
func ParseSettings(m map[string]any) (Settings, error) {
	r := newReader(m, settingKeys...)
	s := DefaultSettings
	s.BatchSize = r.Int("batch_size", s.BatchSize)
	r.CheckInt("batch_size", s.BatchSize, 1, maxBatch)
	s.Timeout = r.Duration("timeout", s.Timeout)
	r.CheckDuration("timeout", s.Timeout, time.Nanosecond, math.MaxInt64)
	s.ConsolidatedPageCalls = r.Bool("consolidated_page_calls", s.ConsolidatedPageCalls)
	if id := r.Int("project_id", 0); id > 0 {
		s.ProjectID = strconv.Itoa(id)
	} else if r.Has("project_id") {
		r.Problemf("project_id", "must be the numeric project id shown in the project's settings (got %d)", id)
	}
	s.ServiceAccountUsername = r.String("service_account_username", "")
	s.ServiceAccountSecret = config.Secret(strings.TrimSpace(r.Secret("service_account_secret").Value()))
	s.APISecret = config.Secret(strings.TrimSpace(r.Secret("api_secret").Value()))
	s.ProjectToken = r.String("project_token", "")
	s.GroupKey = r.String("group_key", "")
	if region := strings.ToLower(r.String("region", s.Region)); regionURLs[region] != "" {
		s.Region = region
	} else {
		r.Problemf("region", "must be one of us, eu, in (got %q)", region)
	}
	if u := r.String("url", ""); u != "" {
		r.CheckURL("url", u, "http", "https")
		if pu, err := url.Parse(u); err == nil && (pu.RawQuery != "" || pu.Fragment != "") {
			r.Problemf("url", "must not have a query or fragment (got %q)", u)
		}
		s.URL = strings.TrimRight(u, "/")
	}

	sa := s.ServiceAccountUsername != "" || s.ServiceAccountSecret != ""
	switch {
	case sa && s.ServiceAccountUsername == "":
		r.Problemf("service_account_username", "required with service_account_secret")
	case sa && s.ServiceAccountSecret == "":
		r.Problemf("service_account_secret", "required with service_account_username")
	case sa && s.APISecret != "":
		r.Problemf("api_secret", "set either a service account or api_secret, not both")
	case sa && s.ProjectID == "":
		r.Problemf("project_id", "required with a service account: /import authenticates service accounts against the project")
	case !sa && s.APISecret == "" && s.ProjectToken == "":
		r.Problemf("", "no credentials: set service_account_username, service_account_secret and project_id (recommended), or api_secret, or project_token")
	}
	if err := r.Err(); err != nil {
		return Settings{}, fmt.Errorf("invalid mixpanel settings: %w", err)
	}
	return s, nil
}

// newReader returns a reader of a settings object m, in which a null keeps
// the default.
func newReader(m map[string]any, known ...string) *settings.Reader {
	r := settings.New(m, known...)
	r.NullIsDefault = true
	return r
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
// default when it does not parse (New then reports why).
func batchSize(m map[string]any) int {
	r := newReader(m)
	if n := r.Int("batch_size", DefaultSettings.BatchSize); r.Err() == nil && n >= 1 {
		return min(n, maxBatch)
	}
	return DefaultSettings.BatchSize
}
