package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
)

// identityFile is the identity and profiles blocks of the documentation.
const identityFile = `identity:
  identifiers:
    - type: user_id
      limit: 1
      frame: ever
      priority: 1
    - type: phone            # a custom type
      limit: 2
      frame: annually
      blocked_values: ["000"]
      collection: users
  blocked_values: ["null", "anonymous"]
  blocked_patterns: ["^[0-]*$"]
  max_merges: 100
  max_mappings: 1000
profiles:
  space_id: default
  access_token: ${PROFILES_TOKEN}
  events_retention: 336h
  rate_limit: 100
`

func TestParseIdentity(t *testing.T) {
	cfg, err := parse("t.yaml", []byte(identityFile), lookupIn(map[string]string{"PROFILES_TOKEN": "profiles-token-0123456789"}))
	if err != nil {
		t.Fatal(err)
	}
	want := &identity.Settings{
		Identifiers: []identity.IdentifierRule{
			{Type: "user_id", Limit: 1, Frame: identity.FrameEver, Priority: 1},
			{Type: "phone", Limit: 2, Frame: identity.FrameAnnually, BlockedValues: []string{"000"}, Collection: identity.Users},
		},
		BlockedValues: []string{"null", "anonymous"}, BlockedPatterns: []string{"^[0-]*$"}, MaxMerges: 100, MaxMappings: 1000,
	}
	if !reflect.DeepEqual(cfg.Identity, want) {
		t.Errorf("Identity =\n%+v\nwant\n%+v", cfg.Identity, want)
	}
	wantProfiles := Profiles{SpaceID: "default", AccessToken: "profiles-token-0123456789", EventRetention: 336 * time.Hour, RateLimit: 100}
	if cfg.Profiles != wantProfiles {
		t.Errorf("Profiles = %+v, want %+v", cfg.Profiles, wantProfiles)
	}
}

// TestParseIdentityForms checks what an absent, null or empty value means.
func TestParseIdentityForms(t *testing.T) {
	for _, tc := range []struct {
		text string
		want *identity.Settings
	}{
		{"", nil},
		{"identity:\n", nil},
		{"identity: ~\n", nil},
		{"identity: {}\n", &identity.Settings{}},
		{"identity: {blocked_values: ~, blocked_patterns: ~, identifiers: ~}\n", &identity.Settings{}},
		// [] blocks nothing, unlike the default list.
		{"identity: {blocked_values: [], blocked_patterns: []}\n", &identity.Settings{BlockedValues: []string{}, BlockedPatterns: []string{}}},
		{"identity: {blocked_values: [0, -1, true]}\n", &identity.Settings{BlockedValues: []string{"0", "-1", "true"}}},
		{"identity: {blocked_patterns: ['^x$$y$']}\n", &identity.Settings{BlockedPatterns: []string{"^x$y$"}}},
		{"identity: {identifiers: [{type: email, limit: ~, frame: ~}]}\n", &identity.Settings{Identifiers: []identity.IdentifierRule{{Type: "email"}}}},
		{"identity: {max_merges: '${MERGES:-7}'}\n", &identity.Settings{MaxMerges: 7}},
	} {
		t.Run(tc.text, func(t *testing.T) {
			cfg, err := parse("t.yaml", []byte(tc.text), lookupIn(nil))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Identity, tc.want) {
				t.Errorf("Identity = %#v, want %#v", cfg.Identity, tc.want)
			}
			if tc.want != nil && tc.want.BlockedValues != nil && cfg.Identity.BlockedValues == nil {
				t.Error("[] became nil: the defaults would apply")
			}
		})
	}
}

func TestParseProfilesDefaults(t *testing.T) {
	def := Profiles{SpaceID: DefaultProfileSpace, EventRetention: DefaultEventRetention}
	for _, tc := range []struct {
		text string
		want Profiles
	}{
		{"", def},
		{"profiles:\n", def},
		{"profiles: {}\n", def},
		{"profiles: {space_id: ~, access_token: ~, events_retention: ~, rate_limit: ~}\n", def},
		{"profiles: {access_token: '${T:-}'}\n", def},
		{"profiles: {space_id: Prod_2-a}\n", Profiles{SpaceID: "Prod_2-a", EventRetention: DefaultEventRetention}},
		{"profiles: {events_retention: 1h, rate_limit: 0.5}\n", Profiles{SpaceID: DefaultProfileSpace, EventRetention: time.Hour, RateLimit: 0.5}},
		{"profiles: {events_retention: 9600h, rate_limit: 100000}\n", Profiles{SpaceID: DefaultProfileSpace, EventRetention: 9600 * time.Hour, RateLimit: 100000}},
		{"profiles: {history: false}\n", Profiles{SpaceID: DefaultProfileSpace, EventRetention: DefaultEventRetention, NoHistory: true}},
		{"profiles: {history: true}\n", def},
		{"profiles: {space_id: " + strings.Repeat("s", 64) + "}\n", Profiles{SpaceID: strings.Repeat("s", 64), EventRetention: DefaultEventRetention}},
	} {
		t.Run(tc.text, func(t *testing.T) {
			cfg, err := parse("t.yaml", []byte(tc.text), lookupIn(nil))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Profiles != tc.want {
				t.Errorf("Profiles = %+v, want %+v", cfg.Profiles, tc.want)
			}
		})
	}
}

// TestParseIdentityErrors: every problem is reported once, at the value
// it is about, and a value of the wrong kind is not reported again by
// identity.Settings.Check as missing.
func TestParseIdentityErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // each "line:col: path: message prefix"
	}{
		{"unknown key", "identity:\n  max_merge: 5\n",
			[]string{"2:3: identity.max_merge: unknown field (did you mean max_merges?)"}},
		{"unknown identifier key", "identity:\n  identifiers:\n    - type: phone\n      limits: 2\n",
			[]string{"4:7: identity.identifiers[0].limits: unknown field (did you mean limit?)"}},
		{"not a mapping", "identity: [user_id]\n", []string{"1:11: identity: must be a mapping"}},
		{"identifiers not a list", "identity:\n  identifiers: {type: phone}\n", []string{"2:16: identity.identifiers: must be a list"}},
		{"identifier not a mapping", "identity:\n  identifiers: [phone]\n", []string{"2:17: identity.identifiers[0]: must be a mapping"}},
		{"wrong kinds", "identity:\n  max_merges: many\n  max_mappings: 1.5\n  identifiers:\n    - {type: [a], limit: x, priority: true}\n",
			[]string{
				"2:15: identity.max_merges: must be a number",
				"3:17: identity.max_mappings: must be a whole number",
				"5:14: identity.identifiers[0].type: must be a string",
				"5:26: identity.identifiers[0].limit: must be a number",
				"5:39: identity.identifiers[0].priority: must be a number",
			}},
		{"lists of strings", "identity:\n  blocked_values: x\n  blocked_patterns: [~]\n",
			[]string{"2:19: identity.blocked_values: must be a list", "3:22: identity.blocked_patterns[0]: must be a string"}},
		{"unset variable", "identity:\n  blocked_values: ['${NOPE}']\n",
			[]string{"2:20: identity.blocked_values[0]: environment variable NOPE is not set"}},
		{"rules", `identity:
  identifiers:
    - limit: 2
    - type: Phone
    - type: email
      frame: hourly
      collection: accounts
    - type: email
      limit: -1
      priority: -2
    - type: group_id
    - type: phone
      collection: teams
      blocked_patterns: ["ok", "(unclosed"]
  blocked_patterns: ["[z-a]"]
  max_merges: -1
  max_mappings: 100001
`, []string{
			"3:7: identity.identifiers[0].type: is required",
			`4:13: identity.identifiers[1].type: "Phone" must be lowercase`,
			`6:14: identity.identifiers[2].frame: "hourly" is not a frame`,
			"7:19: identity.identifiers[2].collection: email is a users identifier",
			`8:13: identity.identifiers[3].type: "email" is listed twice`,
			"9:14: identity.identifiers[3].limit: must be between 1 and 100000",
			"10:17: identity.identifiers[3].priority: must be positive",
			"11:13: identity.identifiers[4].type: group_id identifies accounts",
			`13:19: identity.identifiers[5].collection: "teams" is not a collection`,
			`14:32: identity.identifiers[5].blocked_patterns[1]: "(unclosed" is not a regular expression`,
			`15:22: identity.blocked_patterns[0]: "[z-a]" is not a regular expression`,
			"16:15: identity.max_merges: must be between 1 and 100000",
			"17:17: identity.max_mappings: must be between 1 and 100000",
		}},
		{"profiles not a mapping", "profiles: [x]\n", []string{"1:11: profiles: must be a mapping"}},
		{"profiles unknown key", "profiles:\n  spaceid: x\n", []string{"2:3: profiles.spaceid: unknown field (did you mean space_id?)"}},
		{"profiles values", `profiles:
  space_id: "a b"
  access_token: short
  events_retention: 30m
  rate_limit: -1
`, []string{
			`2:13: profiles.space_id: "a b" is not a valid space id`,
			"3:17: profiles.access_token: must be at least 16 characters",
			"4:21: profiles.events_retention: 30m is out of range: 1h to 9600h",
			"5:15: profiles.rate_limit: -1 is out of range: 0 (no limit) to 100000",
		}},
		{"profiles more values", `profiles:
  space_id: ""
  access_token: "with a space 0123456789"
  events_retention: 9601h
  rate_limit: 100001
`, []string{
			`2:13: profiles.space_id: must not be empty`,
			"3:17: profiles.access_token: must be printable ASCII without spaces",
			"4:21: profiles.events_retention: 9601h is out of range",
			"5:15: profiles.rate_limit: 100001 is out of range",
		}},
		{"profiles kinds", "profiles:\n  space_id: [x]\n  events_retention: 14d\n  rate_limit: fast\n  access_token: {a: b}\n", []string{
			"2:13: profiles.space_id: must be a string",
			`3:21: profiles.events_retention: "14d" is not a duration`,
			"4:15: profiles.rate_limit: must be a number",
			"5:17: profiles.access_token: must be a string",
		}},
		{"zero retention", "profiles: {events_retention: 0s}\n", []string{"1:30: profiles.events_retention: 0s is out of range"}},
		{"rate limit NaN", "profiles: {rate_limit: '${R}'}\n", []string{"1:24: profiles.rate_limit: NaN is out of range"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse("t.yaml", []byte(tc.text), lookupIn(map[string]string{"R": "NaN"}))
			if err == nil {
				t.Fatal("parsed, want errors")
			}
			errs := loadErrors(t, err)
			if len(errs) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for i, fe := range errs {
				if want := "t.yaml:" + tc.want[i]; !strings.HasPrefix(fe.Error(), want) {
					t.Errorf("error %d = %q, want prefix %q", i, fe.Error(), want)
				}
			}
		})
	}
}

// TestLoadIdentityErrors: Load, and so `conflux check`, reports them too,
// naming the file; and the token is never repeated.
func TestLoadIdentityErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conflux.yaml")
	text := "identity:\n  identifiers: [{type: phone, frame: hourly}]\nprofiles:\n  access_token: short-secret\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("loaded, want errors")
	}
	for _, want := range []string{path + ":2:38: identity.identifiers[0].frame: ", path + ":4:17: profiles.access_token: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "short-secret") {
		t.Errorf("error %q repeats the token", err)
	}
}
