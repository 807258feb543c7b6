package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// testEnv is the environment the fixtures see; tests never touch the real one.
var testEnv = map[string]string{
	"CONFLUX_TEST_TOKEN": "test-admin-token-0123456789",
	"ARCHIVE_ENABLED":    "true",
	"EMPTY":              "",
	"WORD":               "word",
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// parseFile parses a file under testdata/ with testEnv.
func parseFile(t *testing.T, file string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return parse(file, data, lookupIn(testEnv))
}

// loadErrors returns the problems in err, failing the test if err is not a
// *LoadError.
func loadErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	le, ok := errors.AsType[*LoadError](err)
	if !ok {
		t.Fatalf("error is %T, want *LoadError: %v", err, err)
	}
	if len(le.Errors) == 0 {
		t.Fatal("LoadError without errors")
	}
	return le.Errors
}

// badFile is one *.bad.yaml fixture and the error it must produce.
type badFile struct {
	file              string
	wantErr           string
	wantLine, wantCol int
}

var badFiles = []badFile{
	{"unknown-top-key.bad.yaml", "sorces: unknown field (did you mean sources?)", 2, 1},
	{"unknown-source-key.bad.yaml", "sources[0].writekey: unknown field (did you mean write_key?)", 3, 5},
	{"unknown-destination-key.bad.yaml", "destinations[0].source: unknown field (did you mean sources?)", 6, 5},
	{"wrong-kind-list.bad.yaml", "sources: must be a list", 2, 3},
	{"wrong-kind-mapping.bad.yaml", "sources[0]: must be a mapping", 2, 5},
	{"wrong-kind-string.bad.yaml", "sources[0].name: must be a string", 3, 11},
	{"wrong-kind-bool.bad.yaml", "destinations[0].enabled: must be true or false", 6, 14},
	{"top-level-list.bad.yaml", "the top level must be a mapping", 1, 1},
	{"bad-id.bad.yaml", `sources[0].id: "Web Site" is not a valid id`, 2, 9},
	{"missing-id.bad.yaml", "sources[1].id: required", 3, 5},
	{"missing-type.bad.yaml", "destinations[0].type: required", 2, 5},
	{"bad-write-key.bad.yaml", `sources[0].write_key: contains ':'`, 3, 16},
	{"duplicate-id.bad.yaml", `sources[2].id: duplicate source id "web" (first declared at line 2)`, 4, 9},
	{"duplicate-destination-id.bad.yaml", `destinations[1].id: duplicate destination id "hook" (first declared at line 2)`, 4, 9},
	{"duplicate-write-key.bad.yaml", "sources[1].write_key: same write key as sources[0] (line 3)", 5, 16},
	{"undeclared-source.bad.yaml", `destinations[0].sources[1]: source "mobile" is not declared in sources`, 6, 20},
	{"settings-not-mapping.bad.yaml", "destinations[0].settings: must be a mapping", 7, 15},
	{"settings-key-not-string.bad.yaml", "destinations[0].settings: keys must be strings", 6, 7},
	{"settings-big-int.bad.yaml", "destinations[0].settings.account: integer 12345678901234567890 is too large", 5, 16},
	{"settings-nan.bad.yaml", "destinations[0].settings.ratio: .nan is not a JSON number", 5, 14},
	{"settings-tag.bad.yaml", "destinations[0].settings.key: unsupported tag !vault", 5, 12},
	{"settings-alias-cycle.bad.yaml", "destinations[0].settings.self[0]: alias *loop refers to a value that contains it", 5, 14},
	{"merge-key.bad.yaml", "destinations[0]: merge keys (<<) are not supported", 4, 5},
	{"bad-public-url.bad.yaml", "public_url: must be an absolute http or https URL", 1, 13},
	{"public-url-query.bad.yaml", "public_url: must not have a query or fragment", 1, 13},
	{"bad-cidr.bad.yaml", `trusted_proxies[1]: "192.168.1.0/33" is not an IP address or CIDR prefix`, 3, 5},
	{"short-admin-token.bad.yaml", "admin_token: must be at least 16 characters", 1, 14},
	{"unset-env.bad.yaml", "sources[0].write_key: environment variable CONFLUX_TEST_UNSET is not set", 3, 16},
	{"bare-dollar.bad.yaml", "sources[0].write_key: $WEB_WRITE_KEY is not expanded: write ${WEB_WRITE_KEY}", 3, 16},
	{"duplicate-key.bad.yaml", "sources[0].name: duplicate key (first at line 3)", 4, 5},
	{"two-documents.bad.yaml", "more than one YAML document", 3, 1},
	// The YAML parser reports a line but no column.
	{"syntax.bad.yaml", "invalid YAML: mapping values are not allowed in this context", 3, 0},
	{"multiple.bad.yaml", "admin_token: must be at least 16 characters", 1, 14},

	// Tracking plans, schema blocks, transformations, filters.
	{"plan-bad-schema.bad.yaml", "tracking_plans[0].rules.events.Order Completed: invalid JSON schema: at /properties/total/type: value must be one of", 6, 11},
	{"plan-schema-not-mapping.bad.yaml", "tracking_plans[0].rules.identify: must be a mapping", 4, 17},
	{"plan-unknown-rule.bad.yaml", "tracking_plans[0].rules.evnets: unknown field (did you mean events?)", 4, 7},
	{"plan-duplicate-id.bad.yaml", `tracking_plans[1].id: duplicate tracking plan id "plan" (first declared at line 2)`, 3, 9},
	{"plan-duplicate-event.bad.yaml", "tracking_plans[0].rules.events.Signed Up: duplicate key (first at line 5)", 6, 9},
	{"undeclared-plan.bad.yaml", `sources[0].tracking_plan: tracking plan "nope" is not declared in tracking_plans`, 3, 20},
	{"schema-bad-action.bad.yaml", `sources[0].schema.track_violations: "omit" is not one of allow, omit_properties, block`, 4, 25},
	{"schema-unknown-key.bad.yaml", "sources[0].schema.track_unplanned_event: unknown field (did you mean track_unplanned_events?)", 4, 7},
	{"forward-self.bad.yaml", "sources[0].schema.forward_blocked_to: cannot be the source itself", 4, 27},
	{"forward-undeclared.bad.yaml", `sources[0].schema.forward_violations_to: source "violations" is not declared in sources`, 4, 30},
	{"transformation-bad-fql.bad.yaml", "transformations[1].fqlDefinedProperties[0].fql: fql: 1:10: unterminated arguments of lowercase()", 11, 14},
	{"transformation-no-source.bad.yaml", "transformations[0].source: required", 2, 5},
	{"transformation-undeclared-destination.bad.yaml", `transformations[0].destination: destination "hook" is not declared in destinations`, 5, 18},
	{"transformation-unknown-key.bad.yaml", "transformations[0].propertyRename: unknown field (did you mean propertyRenames?)", 6, 5},
	{"transformation-rename-unknown-key.bad.yaml", "transformations[0].propertyRenames[0].newname: unknown field (did you mean newName?)", 7, 22},
	{"transformation-changes-nothing.bad.yaml", "transformations[0]: the transformation changes nothing", 3, 5},
	{"transformation-duplicate-id.bad.yaml", `transformations[1].id: duplicate transformation id "t" (first declared at line 3)`, 4, 10},
	{"filter-bad-percent.bad.yaml", "destinations[0].filters[0].actions[0].percent: 1.5 is out of range", 8, 22},
	{"filter-percent-string.bad.yaml", "destinations[0].filters[0].actions[0].percent: must be a number", 8, 22},
	{"filter-bad-fql.bad.yaml", "destinations[0].filters[0].if: fql: 1:8: expected a value after '='", 5, 13},
	{"filter-bad-fields.bad.yaml", `destinations[0].filters[0].actions[0].fields["properties"].field: unknown field (did you mean fields?)`, 9, 28},
	{"filter-protected-field.bad.yaml", `destinations[0].filters[0].actions[0].fields[""][1]: "messageId" cannot be removed`, 9, 28},
	{"dedup-window-short.bad.yaml", "dedup_window: 30m is too short: at least 1h0m0s", 1, 15},
	{"dedup-window-bad.bad.yaml", `dedup_window: "30 days" is not a duration`, 1, 15},

	// Delivery options.
	{"delivery-unknown-key.bad.yaml", "destinations[0].delivery.concurency: unknown field (did you mean concurrency?)", 5, 7},
	{"delivery-not-mapping.bad.yaml", "destinations[0].delivery: must be a mapping", 4, 15},
	{"delivery-concurrency-string.bad.yaml", "destinations[0].delivery.concurrency: must be a number", 5, 20},
	{"delivery-concurrency-fraction.bad.yaml", "destinations[0].delivery.concurrency: must be a whole number", 4, 29},
	{"delivery-concurrency-range.bad.yaml", "destinations[0].delivery.concurrency: 300 is out of range: 1 to 256", 5, 20},
	{"delivery-rate-limit-range.bad.yaml", "destinations[0].delivery.rate_limit: -1 is out of range: 0 (no limit) to 100000 requests per second", 5, 19},
	{"delivery-rate-limit-string.bad.yaml", "destinations[0].delivery.rate_limit: must be a number", 5, 19},
	{"delivery-retry-age-bad.bad.yaml", `destinations[0].delivery.max_retry_age: "4 hours" is not a duration: write it like 4h or 90m`, 5, 22},
	{"delivery-retry-age-range.bad.yaml", "destinations[0].delivery.max_retry_age: 30s is out of range: 1m to 168h", 5, 22},
	{"delivery-retry-age-long.bad.yaml", "destinations[0].delivery.max_retry_age: 169h is out of range: 1m to 168h", 5, 22},
	{"delivery-retry-age-kind.bad.yaml", "destinations[0].delivery.max_retry_age: must be a string", 5, 22},

	// Alert rules.
	{"alert-not-mapping.bad.yaml", "alerts[0]: must be a mapping", 2, 5},
	{"alert-unknown-key.bad.yaml", "alerts[0].treshold: unknown field (did you mean threshold?)", 4, 5},
	{"alert-bad-kind.bad.yaml", `alerts[0].kind: "rate_below" is not a kind of alert: use success_rate_below, discards_above or discards_change`, 3, 11},
	{"alert-reserved-id.bad.yaml", `alerts[0].id: "events" is reserved`, 2, 9},
	{"alert-duplicate-id.bad.yaml", `alerts[1].id: duplicate alert id "a" (first declared at line 2)`, 3, 10},
	{"alert-rate-range.bad.yaml", "alerts[0].threshold: 1.5 is out of range: a fraction above 0 and at most 1", 4, 16},
	{"alert-discards-fraction.bad.yaml", "alerts[0].threshold: 2.5 is out of range: a whole number of discarded events, 0 to 1000000000000", 4, 16},
	{"alert-change-range.bad.yaml", "alerts[0].threshold: 0 is out of range: a percentage above 0 and at most 1000000", 4, 16},
	{"alert-no-threshold.bad.yaml", "alerts[0].threshold: required: the lowest acceptable success rate, a fraction such as 0.95", 2, 5},
	{"alert-threshold-string.bad.yaml", "alerts[0].threshold: must be a number", 4, 16},
	{"alert-no-window.bad.yaml", "alerts[0].window: required: a duration in whole minutes, 1m to 24h", 2, 5},
	{"alert-window-short.bad.yaml", "alerts[0].window: 30s is out of range: 1m to 24h", 5, 13},
	{"alert-window-long.bad.yaml", "alerts[0].window: 25h is out of range: 1m to 24h", 5, 13},
	{"alert-window-fraction.bad.yaml", "alerts[0].window: 1m30s is not a whole number of minutes", 5, 13},
	{"alert-window-bad.bad.yaml", `alerts[0].window: "5 minutes" is not a duration: write it like 5m or 1h`, 5, 13},
	{"alert-min-events-not-applicable.bad.yaml", "alerts[0].min_events: does not apply to discards_above rules: only to success_rate_below and discards_change", 6, 17},
	{"alert-min-events-range.bad.yaml", "alerts[0].min_events: -1 is out of range: 1 to 1000000000 (left out: 20)", 6, 17},
	{"alert-no-url.bad.yaml", "alerts[0].notify.url: required: the URL that firing and resolved events are POSTed to", 7, 7},
	{"alert-bad-url.bad.yaml", "alerts[0].notify.url: must be an absolute http or https URL", 7, 12},
	{"alert-notify-unknown-key.bad.yaml", "alerts[0].notify.urls: unknown field (did you mean url?)", 7, 7},
	{"alert-header-name.bad.yaml", "alerts[0].notify.headers.Bad Header: not a header name", 9, 23},
	{"alert-undeclared-destination.bad.yaml", `alerts[0].destination: destination "hook" is not declared in destinations`, 4, 18},
	{"alert-undeclared-source.bad.yaml", `alerts[0].source: source "mobile" is not declared in sources`, 3, 13},
}

// TestParseBadRulesReportOnlyTheCause checks that rules whose YAML has a
// problem are not also compiled: the follow-on errors would only confuse.
func TestParseBadRulesReportOnlyTheCause(t *testing.T) {
	for _, file := range []string{
		"transformation-unknown-key.bad.yaml",
		"transformation-rename-unknown-key.bad.yaml",
		"filter-bad-fields.bad.yaml",
		"filter-percent-string.bad.yaml",
		"alert-threshold-string.bad.yaml",
		"alert-window-bad.bad.yaml",
		"alert-notify-unknown-key.bad.yaml",
		"alert-not-mapping.bad.yaml",
	} {
		t.Run(file, func(t *testing.T) {
			_, err := parseFile(t, file)
			if errs := loadErrors(t, err); len(errs) != 1 {
				t.Errorf("got %d errors, want only the YAML problem:\n%v", len(errs), err)
			}
		})
	}
}

func TestParseBadFiles(t *testing.T) {
	for _, tc := range badFiles {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := parseFile(t, tc.file)
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			if cfg != nil {
				t.Errorf("config = %v, want nil on error", cfg)
			}
			errs := loadErrors(t, err)
			i := slices.IndexFunc(errs, func(fe *FieldError) bool { return strings.Contains(fe.Error(), tc.wantErr) })
			if i < 0 {
				t.Fatalf("no error contains %q; got:\n%v", tc.wantErr, err)
			}
			fe := errs[i]
			if fe.File != tc.file || fe.Line != tc.wantLine || fe.Col != tc.wantCol {
				t.Errorf("error %q at %s:%d:%d, want %s:%d:%d", fe, fe.File, fe.Line, fe.Col, tc.file, tc.wantLine, tc.wantCol)
			}
			wantPrefix := fmt.Sprintf("%s:%d:%d: ", tc.file, tc.wantLine, tc.wantCol)
			if tc.wantCol == 0 { // the YAML parser reports no column for syntax errors
				wantPrefix = fmt.Sprintf("%s:%d: ", tc.file, tc.wantLine)
			}
			if !strings.HasPrefix(fe.Error(), wantPrefix) {
				t.Errorf("error %q does not start with %q", fe, wantPrefix)
			}
		})
	}
}

// TestEveryBadFileIsInTheTable keeps fixtures and expectations in step.
func TestEveryBadFileIsInTheTable(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if !slices.ContainsFunc(badFiles, func(tc badFile) bool { return tc.file == name }) {
			t.Errorf("%s has no entry in badFiles", name)
		}
	}
}

func TestParseGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// Named by its path, so that code files are found next to it.
			cfg, err := parseIn(t, filepath.Base(f), mustRead(t, f))
			if err != nil {
				t.Fatalf("unexpected error:\n%v", err)
			}
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			if _, err := json.Marshal(cfg); err != nil {
				t.Errorf("config does not marshal to JSON: %v", err)
			}
		})
	}
}

func TestParseFull(t *testing.T) {
	cfg, err := parseFile(t, "full.good.yaml")
	if err != nil {
		t.Fatalf("unexpected error:\n%v", err)
	}
	if got, want := cfg.AdminToken.Value(), testEnv["CONFLUX_TEST_TOKEN"]; got != want {
		t.Errorf("AdminToken = %q, want %q", got, want)
	}
	if got, want := cfg.PublicURL, "https://collect.example.com"; got != want {
		t.Errorf("PublicURL = %q, want %q", got, want)
	}
	wantProxies := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.168.1.0/24"),
	}
	if !slices.Equal(cfg.TrustedProxies, wantProxies) {
		t.Errorf("TrustedProxies = %v, want %v", cfg.TrustedProxies, wantProxies)
	}
	wantSources := []Source{
		{ID: "web", Name: "Website", WriteKey: "webKey0123456789", Origin: OriginFile},
		{ID: "ios", Name: "ios", WriteKey: "iosKey0123456789", Origin: OriginFile},
		{ID: "42", Name: "42", Origin: OriginFile},
	}
	if !reflect.DeepEqual(cfg.Sources, wantSources) {
		t.Errorf("Sources =\n%+v\nwant\n%+v", cfg.Sources, wantSources)
	}
	headers := map[string]any{"Authorization": "Bearer none", "X-Count": "3"}
	wantDestinations := []Destination{
		{
			ID: "hook", Name: "Order webhook", Type: "webhook", Enabled: true,
			Sources: []string{"web", "ios"},
			Filters: []transform.Filter{},
			Settings: map[string]any{
				"url":     "https://example.com/hook?token=${literal}",
				"headers": headers,
				"timeout": float64(30),
				"ratio":   0.25,
				"big":     float64(1 << 53),
				"hex":     float64(31),
				"verbose": false,
				"nothing": nil,
				"tags":    []any{"a", float64(1), true, nil},
				"nested":  map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": "d"}}}},
				"date":    "2024-01-02",
			},
			Delivery: DeliveryOptions{Concurrency: 4, RateLimit: 0.5, MaxRetryAge: Duration(4 * time.Hour)},
			Origin:   OriginFile,
		},
		{
			ID: "archive", Type: "webhook", Enabled: true,
			Sources:  []string{"web"},
			Settings: map[string]any{"headers": headers},
			Filters:  []transform.Filter{},
			Delivery: DeliveryOptions{RateLimit: 50, MaxRetryAge: Duration(90 * time.Minute)},
			Origin:   OriginFile,
		},
		{
			ID: "disabled", Type: "amplitude", Enabled: false,
			Sources:  []string{},
			Settings: map[string]any{},
			Filters:  []transform.Filter{},
			Origin:   OriginFile,
		},
	}
	if !reflect.DeepEqual(cfg.Destinations, wantDestinations) {
		t.Errorf("Destinations =\n%+v\nwant\n%+v", cfg.Destinations, wantDestinations)
	}
}

// TestParseRules checks every field of tracking plans, schema blocks,
// transformations and filters as decoded from rules.good.yaml.
func TestParseRules(t *testing.T) {
	cfg, err := parseFile(t, "rules.good.yaml")
	if err != nil {
		t.Fatalf("unexpected error:\n%v", err)
	}
	if cfg.DedupWindow != 168*time.Hour {
		t.Errorf("DedupWindow = %v, want 168h", cfg.DedupWindow)
	}
	traits := json.RawMessage(`{"properties":{"traits":{"properties":{"email":{"format":"email","type":"string"}},"type":"object"}},"type":"object"}`)
	wantPlans := []TrackingPlan{
		{
			ID: "web-plan", Name: "Web plan", Origin: OriginFile,
			Rules: PlanRules{
				Events: map[string]json.RawMessage{
					"Order Completed": json.RawMessage(`{"properties":{"properties":{"properties":{"total":{"minimum":0,"type":"number"}},"required":["total"],"type":"object"}},"type":"object"}`),
					"Signed Up":       json.RawMessage(`{}`),
					"Viewed":          json.RawMessage(`{}`),
				},
				Identify: traits,
				Group:    traits,
			},
		},
		{ID: "empty-plan", Name: "empty-plan", Origin: OriginFile, Rules: PlanRules{Events: map[string]json.RawMessage{}}},
	}
	if !reflect.DeepEqual(cfg.TrackingPlans, wantPlans) {
		got, _ := json.Marshal(cfg.TrackingPlans)
		want, _ := json.Marshal(wantPlans)
		t.Errorf("TrackingPlans =\n%s\nwant\n%s", got, want)
	}
	wantSources := []Source{
		{
			ID: "web", Name: "web", Origin: OriginFile, TrackingPlan: "web-plan",
			Schema: SourceSchema{
				Enforcement: plan.Enforcement{
					TrackUnplannedEvents: plan.Block,
					TrackViolations:      plan.OmitProperties,
					CommonViolations:     plan.Omit, // from ${COMMON:-omit}
				},
				ForwardViolationsTo: "protocols",
				ForwardBlockedTo:    "protocols",
			},
		},
		{ID: "protocols", Name: "protocols", Origin: OriginFile, TrackingPlan: "empty-plan"},
	}
	if !reflect.DeepEqual(cfg.Sources, wantSources) {
		t.Errorf("Sources =\n%+v\nwant\n%+v", cfg.Sources, wantSources)
	}
	off, quarter := false, 0.25
	wantFilters := []transform.Filter{
		{
			ID: "no-pii", Title: "No PII", Description: "Drop emails", If: "all",
			Actions: []transform.Action{{
				Type:   transform.BlocklistFields,
				Fields: transform.Fields{"properties": {"email"}, "context": {"ip"}, "": {"anonymousId"}},
			}},
		},
		{
			If: "properties.test = true", Enabled: &off,
			Actions: []transform.Action{
				{Type: transform.SampleEvent, Percent: &quarter, Path: "userId"},
				{Type: transform.DropEvent},
			},
		},
	}
	if len(cfg.Destinations) != 1 || !reflect.DeepEqual(cfg.Destinations[0].Filters, wantFilters) {
		t.Errorf("Destinations = %+v, want one with filters %+v", cfg.Destinations, wantFilters)
	}
	on := true
	wantTransformations := []Transformation{
		{
			Transformation: transform.Transformation{
				ID: "rename", Name: "Rename", Enabled: &on, If: "event = 'Checkout'", NewEventName: "Order Completed",
				PropertyRenames: []transform.PropertyRename{{OldName: "orderId", NewName: "order.id"}},
				PropertyDrops:   []string{"debug"},
			},
			Source: "web", Origin: OriginFile,
		},
		{
			Transformation: transform.Transformation{
				ID: "hook-only", Enabled: &off, If: "all",
				PropertyValueTransformations: []transform.PropertyValueTransformation{{
					PropertyPaths: []string{"properties.channel", "context.channel"},
					PropertyValue: map[string]any{"kind": "web", "n": float64(2)},
				}},
				FQLDefinedProperties: []transform.FQLDefinedProperty{{FQL: "lowercase(properties.email)", PropertyName: "properties.email"}},
			},
			Source: "web", Destination: "hook", Origin: OriginFile,
		},
	}
	if !reflect.DeepEqual(cfg.Transformations, wantTransformations) {
		got, _ := json.Marshal(cfg.Transformations)
		want, _ := json.Marshal(wantTransformations)
		t.Errorf("Transformations =\n%s\nwant\n%s", got, want)
	}
}

// TestParseRulesMatchJSON checks that rules read from a file equal the same
// rules sent to the Config API as JSON, once in canonical form, so that a
// plan moved from one to the other is the same plan.
func TestParseRulesMatchJSON(t *testing.T) {
	yamlText := `
tracking_plans:
  - id: p
    rules:
      events:
        E:
          type: object
          properties: {properties: {type: object, required: [a], properties: {a: {type: integer, maximum: 10}}}}
`
	jsonText := `{"events": {"E": {"type": "object", "properties": {"properties": {"properties": {"a": {"maximum": 10, "type": "integer"}}, "required": ["a"], "type": "object"}}}}}`
	cfg, err := parse("t.yaml", []byte(yamlText), lookupIn(nil))
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON PlanRules
	if err := json.Unmarshal([]byte(jsonText), &fromJSON); err != nil {
		t.Fatal(err)
	}
	canon, errs := CanonicalRules("", fromJSON)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := string(cfg.TrackingPlans[0].Rules.Events["E"]), string(canon.Events["E"]); got != want {
		t.Errorf("from YAML %s\nfrom JSON %s", got, want)
	}
}

func TestParseDedupWindow(t *testing.T) {
	for _, tc := range []struct {
		text    string
		want    time.Duration
		wantErr string
	}{
		{"", DefaultDedupWindow, ""},
		{"dedup_window: 1h\n", time.Hour, ""},
		{"dedup_window: 2160h\n", 90 * 24 * time.Hour, ""},
		{"dedup_window: ${WINDOW:-48h}\n", 48 * time.Hour, ""},
		{"dedup_window: 59m59s\n", 0, "too short: at least 1h0m0s"},
		{"dedup_window: -1h\n", 0, "too short"},
		{"dedup_window: 30\n", 0, "is not a duration"},
		{"dedup_window: [1h]\n", 0, "must be a string"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			cfg, err := parse("t.yaml", []byte(tc.text), lookupIn(nil))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "t.yaml:1:15: dedup_window: ") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q at 1:15", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DedupWindow != tc.want {
				t.Errorf("DedupWindow = %v, want %v", cfg.DedupWindow, tc.want)
			}
		})
	}
}

// TestParseDelivery checks the delivery block's values at the edges of
// their ranges, and the forms a value may take.
func TestParseDelivery(t *testing.T) {
	const head = "destinations:\n  - id: d\n    type: webhook\n    delivery: "
	for _, tc := range []struct {
		block   string
		env     map[string]string
		want    DeliveryOptions
		wantErr string // at line 4
	}{
		{block: "", want: DeliveryOptions{}},
		{block: "{}", want: DeliveryOptions{}},
		{block: "{concurrency: 1, rate_limit: 0, max_retry_age: 1m}", want: DeliveryOptions{Concurrency: 1, MaxRetryAge: Duration(time.Minute)}},
		{block: "{concurrency: 256, rate_limit: 100000, max_retry_age: 168h}",
			want: DeliveryOptions{Concurrency: 256, RateLimit: 100000, MaxRetryAge: Duration(168 * time.Hour)}},
		{block: "{concurrency: 0, rate_limit: 0.001, max_retry_age: 0s}", want: DeliveryOptions{RateLimit: 0.001}},
		{block: "{concurrency: 1e2}", want: DeliveryOptions{Concurrency: 100}},
		{block: "{concurrency: ~, rate_limit: ~, max_retry_age: ~}", want: DeliveryOptions{}},
		{block: "{concurrency: '${C}', max_retry_age: '${AGE:-2h}'}", env: map[string]string{"C": "16"},
			want: DeliveryOptions{Concurrency: 16, MaxRetryAge: Duration(2 * time.Hour)}},
		{block: "{concurrency: '${C}'}", env: map[string]string{"C": "many"}, wantErr: "delivery.concurrency: must be a number"},
		{block: "{concurrency: 257}", wantErr: "delivery.concurrency: 257 is out of range"},
		{block: "{concurrency: -1}", wantErr: "delivery.concurrency: -1 is out of range"},
		{block: "{concurrency: true}", wantErr: "delivery.concurrency: must be a number"},
		{block: "{rate_limit: 100000.5}", wantErr: "delivery.rate_limit: 100000.5 is out of range"},
		{block: "{rate_limit: .inf}", wantErr: "delivery.rate_limit: .inf is not a JSON number"},
		{block: "{max_retry_age: 59s}", wantErr: "delivery.max_retry_age: 59s is out of range"},
		{block: "{max_retry_age: -1h}", wantErr: "delivery.max_retry_age: -1h is out of range"},
		{block: "{max_retry_age: 240}", wantErr: `delivery.max_retry_age: "240" is not a duration`},
		{block: "[4]", wantErr: "delivery: must be a mapping"},
		{block: "{shards: 3}", want: DeliveryOptions{Shards: 3}},
		{block: "{shards: 16, concurrency: 32}", want: DeliveryOptions{Shards: 16, Concurrency: 32}},
		{block: "{shards: 9}", wantErr: "delivery.shards: 9 shards need a concurrency of at least 9"},
		{block: "{shards: 0.5}", wantErr: "delivery.shards: must be a whole number"},
		{block: "{shards: 65, concurrency: 100}", wantErr: "delivery.shards: 65 is out of range: 1 to 64"},
	} {
		t.Run(tc.block, func(t *testing.T) {
			cfg, err := parse("t.yaml", []byte(head+tc.block+"\n"), lookupIn(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "t.yaml:4:") || !strings.Contains(err.Error(), "destinations[0]."+tc.wantErr) {
					t.Errorf("err = %v, want %q on line 4", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Destinations[0].Delivery; got != tc.want {
				t.Errorf("Delivery = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSchemaFieldsFollowEnforcement keeps the keys a schema block accepts
// in step with the controls plan.Enforcement has.
func TestSchemaFieldsFollowEnforcement(t *testing.T) {
	var e plan.Enforcement
	for i, key := range enforcementKeys() {
		if !setEnforcement(&e, key, fmt.Sprint(i)) {
			t.Errorf("setEnforcement(%q) found no field", key)
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]string
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 8 || len(enforcementKeys()) != len(fields) {
		t.Fatalf("enforcement keys %v, JSON fields %v: want the 8 controls", enforcementKeys(), fields)
	}
	for i, key := range enforcementKeys() {
		// The yaml and json names agree, and each key set its own field.
		if fields[key] != fmt.Sprint(i) {
			t.Errorf("control %q: JSON field = %q, want %d", key, fields[key], i)
		}
	}
	for _, key := range []string{"forward_violations_to", "forward_blocked_to", "track_unplanned_events", "common_violations"} {
		if !slices.Contains(schemaFields, key) {
			t.Errorf("schema block does not accept %q", key)
		}
	}
}

// TestParseSettingsMatchJSON checks the promise that file settings equal the
// same settings decoded from JSON, as the Config API and the store do.
func TestParseSettingsMatchJSON(t *testing.T) {
	yamlText := `
destinations:
  - id: d
    type: webhook
    settings:
      n: 3
      f: 1.5
      neg: -7
      list: [1, "x", null, {k: false}]
`
	jsonText := `{"n": 3, "f": 1.5, "neg": -7, "list": [1, "x", null, {"k": false}]}`
	cfg, err := parse("t.yaml", []byte(yamlText), lookupIn(nil))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal([]byte(jsonText), &want); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Destinations[0].Settings; !reflect.DeepEqual(got, want) {
		t.Errorf("settings = %#v, want %#v", got, want)
	}
}

func TestParseMultipleErrors(t *testing.T) {
	_, err := parseFile(t, "multiple.bad.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"multiple.bad.yaml:1:14: admin_token: must be at least 16 characters",
		"multiple.bad.yaml:2:13: public_url: must be an absolute http or https URL",
		`multiple.bad.yaml:4:9: sources[0].id: "Web" is not a valid id`,
		"multiple.bad.yaml:5:5: sources[0].writekey: unknown field (did you mean write_key?)",
		"multiple.bad.yaml:7:16: sources[1].write_key: environment variable MISSING is not set",
		`multiple.bad.yaml:11:20: destinations[0].sources[1]: source "nope" is not declared in sources`,
		"multiple.bad.yaml:12:15: destinations[0].settings: must be a mapping",
	}
	errs := loadErrors(t, err)
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i := range min(len(errs), len(want)) {
		if !strings.HasPrefix(errs[i].Error(), want[i]) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i], want[i])
		}
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(errs) {
		t.Errorf("Error() has %d lines, want one per problem (%d)", len(lines), len(errs))
	}
}

func TestParseEmpty(t *testing.T) {
	for _, text := range []string{"", "\n", "# nothing\n", "---\n", "~\n", "null\n"} {
		t.Run(fmt.Sprintf("%q", text), func(t *testing.T) {
			cfg, err := parse("empty.yaml", []byte(text), lookupIn(nil))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.file != "empty.yaml" {
				t.Errorf("file = %q, want the name given to parse", cfg.file)
			}
			got := *cfg
			got.file, got.positions = "", nil
			want := Config{DedupWindow: DefaultDedupWindow, Profiles: Profiles{SpaceID: DefaultProfileSpace, EventRetention: DefaultEventRetention}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config = %+v, want empty", cfg)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{"plain", "abc", "abc", ""},
		{"set", "${WORD}", "word", ""},
		{"embedded", "a-${WORD}-b${WORD}", "a-word-bword", ""},
		{"default unused", "${WORD:-other}", "word", ""},
		{"default for unset", "${NOPE:-other}", "other", ""},
		{"default for empty", "${EMPTY:-other}", "other", ""},
		{"empty default", "${NOPE:-}", "", ""},
		{"default with colon", "${NOPE:-http://x:80}", "http://x:80", ""},
		{"set but empty", "${EMPTY}", "", ""},
		{"escaped", "$${WORD} costs $$5", "${WORD} costs $5", ""},
		{"lone dollar", "5$ or $5 or $", "5$ or $5 or $", ""},
		{"no re-expansion", "${NOPE:-$${WORD}}", "$${WORD}", ""},
		{"unset", "${NOPE}", "", "environment variable NOPE is not set"},
		{"bare name", "$WORD", "", "$WORD is not expanded"},
		{"bad name", "${A-B}", "", "invalid reference ${A-B}"},
		{"empty name", "${}", "", "invalid reference ${}"},
		{"unterminated", "${WORD", "", "unterminated ${"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &loader{file: "t.yaml", lookupEnv: lookupIn(testEnv)}
			got, ok := l.expand(fixedPath("p"), nil, tc.in)
			if tc.wantErr == "" {
				if !ok || len(l.errs) > 0 || got != tc.want {
					t.Errorf("expand(%q) = %q, %v, %v; want %q", tc.in, got, ok, l.errs, tc.want)
				}
				return
			}
			if ok || len(l.errs) == 0 || !strings.Contains(l.errs[0].Message, tc.wantErr) {
				t.Errorf("expand(%q) = %q, %v, %v; want error %q", tc.in, got, ok, l.errs, tc.wantErr)
			}
		})
	}
}

func TestParseEnvEnabled(t *testing.T) {
	const text = "destinations:\n  - id: d\n    type: webhook\n    enabled: ${ON}\n"
	for _, tc := range []struct {
		value   string
		want    bool
		wantErr bool
	}{
		{"true", true, false},
		{"false", false, false},
		{"FALSE", false, false},
		{"yes", false, true},
		{"", false, true},
	} {
		t.Run(tc.value, func(t *testing.T) {
			cfg, err := parse("t.yaml", []byte(text), lookupIn(map[string]string{"ON": tc.value}))
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "t.yaml:4:14: destinations[0].enabled: must be true or false") {
					t.Errorf("err = %v, want must be true or false at 4:14", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Destinations[0].Enabled; got != tc.want {
				t.Errorf("Enabled = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParsePublicURL(t *testing.T) {
	for _, tc := range []struct{ in, want, wantErr string }{
		{"https://collect.example.com", "https://collect.example.com", ""},
		{"http://localhost:8080/", "http://localhost:8080", ""},
		{"https://example.com/conflux/", "https://example.com/conflux", ""},
		{"ftp://example.com", "", "must be an absolute http or https URL"},
		{"/collect", "", "must be an absolute http or https URL"},
		{"https:example.com", "", "must include a host"},
		{"https://", "", "must include a host"},
		{"https://user:pw@example.com", "", "must not contain a user name or password"},
		{"https://example.com/#top", "", "must not have a query or fragment"},
		{"https://example.com/?", "", "must not have a query or fragment"},
		{"https://exa mple.com", "", "not a valid URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			cfg, err := parse("t.yaml", []byte("public_url: "+tc.in+"\n"), lookupIn(nil))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.PublicURL != tc.want {
					t.Errorf("PublicURL = %q, want %q", cfg.PublicURL, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "t.yaml:1:13: public_url: "+tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q repeats the URL's password", err)
			}
		})
	}
}

// TestSecretsNotPrinted proves that neither formatting nor JSON reveals the
// admin token of a loaded config, also one with every kind of rule.
func TestSecretsNotPrinted(t *testing.T) {
	const token = "very-secret-admin-token-42"
	text := "admin_token: ${TOKEN}\n" + `
sources:
  - id: web
    tracking_plan: p
    schema: {track_unplanned_events: block}
tracking_plans:
  - id: p
    rules: {events: {E: {type: object}}}
destinations:
  - id: d
    type: webhook
    sources: [web]
    filters: [{if: all, actions: [{type: sample_event, percent: 0.5}]}]
transformations:
  - {id: t, source: web, if: all, propertyValueTransformations: [{propertyPaths: [properties.x], propertyValue: {a: [1]}}]}
`
	cfg, err := parse("t.yaml", []byte(text), lookupIn(map[string]string{"TOKEN": token}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminToken.Value() != token {
		t.Fatalf("AdminToken not loaded: the test proves nothing")
	}
	printed := fmt.Sprintf("%v %+v %s", cfg, *cfg, cfg.AdminToken)
	if strings.Contains(printed, token) {
		t.Errorf("formatted config contains the admin token: %s", printed)
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), token) {
		t.Errorf("JSON config contains the admin token: %s", data)
	}
	for _, want := range []string{`"tracking_plan":"p"`, `"track_unplanned_events":"block"`, `"E":{"type":"object"}`, `"percent":0.5`, `"propertyValue":{"a":[1]}`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("JSON config lacks %s: %s", want, data)
		}
	}

	// Nor do errors about it.
	_, err = parse("t.yaml", []byte("admin_token: ${TOKEN}\n"), lookupIn(map[string]string{"TOKEN": "short secret"}))
	if err == nil || strings.Contains(err.Error(), "short secret") {
		t.Errorf("err = %v, want an error that does not repeat the token", err)
	}
}

// TestExampleConfig keeps docs/examples/conflux.yaml loadable.
func TestExampleConfig(t *testing.T) {
	const path = "../../docs/examples/conflux.yaml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(path, data, lookupIn(nil))
	if err != nil {
		t.Fatalf("example does not load:\n%v", err)
	}
	if got := cfg.AdminToken.Value(); got != "change-me-to-a-long-random-token" {
		t.Errorf("AdminToken default = %q", got)
	}
	if len(cfg.Sources) != 3 {
		t.Errorf("got %d sources, want 3", len(cfg.Sources))
	}
	if cfg.DedupWindow != DefaultDedupWindow {
		t.Errorf("DedupWindow = %v, want the default written out", cfg.DedupWindow)
	}
	if len(cfg.TrackingPlans) != 1 || len(cfg.TrackingPlans[0].Rules.Events) == 0 || cfg.TrackingPlans[0].Rules.Identify == nil {
		t.Errorf("tracking plans = %+v, want one with event and identify rules", cfg.TrackingPlans)
	}
	if web := cfg.Sources[0]; web.TrackingPlan == "" || web.Schema.Enforcement == (plan.Enforcement{}) || web.Schema.ForwardViolationsTo == "" {
		t.Errorf("source %s = %+v, want a tracking plan, enforcement and forwards", web.ID, web)
	}
	if len(cfg.Transformations) < 2 || cfg.Transformations[1].Destination == "" {
		t.Errorf("transformations = %+v, want a source-scoped and a destination-scoped one", cfg.Transformations)
	}
	if len(cfg.Destinations) > 0 && len(cfg.Destinations[0].Filters) == 0 {
		t.Errorf("destination has no filters")
	}
	kinds := map[AlertKind]bool{}
	for _, a := range cfg.Alerts {
		kinds[a.Kind] = true
	}
	if len(kinds) != len(AlertKinds) || cfg.Alerts[0].Destination == "" || len(cfg.Alerts[0].Notify.Headers) == 0 {
		t.Errorf("alerts = %+v, want one of each kind, the first on a destination with headers", cfg.Alerts)
	}
	if len(cfg.Destinations) != 1 || cfg.Destinations[0].Type != "webhook" {
		t.Fatalf("destinations = %+v, want one webhook", cfg.Destinations)
	}
	settings := cfg.Destinations[0].Settings
	if _, ok := settings["url"].(string); !ok {
		t.Errorf("webhook settings lack a url: %v", settings)
	}
	if _, ok := settings["headers"].(map[string]any); !ok {
		t.Errorf("webhook settings lack headers: %v", settings)
	}
}

func TestLoad(t *testing.T) {
	t.Run("good", func(t *testing.T) {
		cfg, err := Load("testdata/minimal.good.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Sources) != 1 || cfg.Sources[0].ID != "web" {
			t.Errorf("Sources = %+v", cfg.Sources)
		}
	})
	t.Run("bad names the path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "conflux.yaml")
		if err := os.WriteFile(path, []byte("sources:\n  - id: web\n    writekey: x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		want := path + ":3:5: sources[0].writekey: unknown field (did you mean write_key?)"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
		if fe, ok := errors.AsType[*FieldError](err); !ok || fe.Path != "sources[0].writekey" {
			t.Errorf("errors.AsType[*FieldError] = %v, %v", fe, ok)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"writekey", "write_key"},
		{"Write_Key", "write_key"},
		{"nmae", "name"},
		{"ids", "id"},
		{"url", ""},
		{"x", ""},
	} {
		if got := suggestKey(tc.key, sourceFields); got != tc.want {
			t.Errorf("suggestKey(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("destinations:\n  - id: d\n    type: webhook\n    settings:\n      a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "      a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	_, err := parse("bomb.yaml", []byte(b.String()), lookupIn(nil))
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Errorf("err = %v, want a too-many-values error", err)
	}
}

func TestParseDeepSettings(t *testing.T) {
	text := "destinations:\n  - id: d\n    type: webhook\n    settings: {a: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}\n"
	_, err := parse("deep.yaml", []byte(text), lookupIn(nil))
	if err == nil || !strings.Contains(err.Error(), "nested more than 64 levels deep") {
		t.Errorf("err = %v, want a nesting error", err)
	}
}

func TestParseTooManyErrors(t *testing.T) {
	var b strings.Builder
	for i := range maxErrors + 50 {
		fmt.Fprintf(&b, "unknown%d: x\n", i)
	}
	_, err := parse("many.yaml", []byte(b.String()), lookupIn(nil))
	errs := loadErrors(t, err)
	if len(errs) != maxErrors+1 {
		t.Fatalf("got %d errors, want %d and a summary", len(errs), maxErrors)
	}
	if got, want := errs[maxErrors].Error(), "many.yaml: too many errors: 50 more not shown"; got != want {
		t.Errorf("last error = %q, want %q", got, want)
	}
}
