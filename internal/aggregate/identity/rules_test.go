package identity

import (
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/event"
)

func TestSettingsCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Settings
		want string // a problem's path, "" for none
	}{
		{"defaults", Settings{}, ""},
		{"custom type", Settings{Identifiers: []IdentifierRule{{Type: "phone", Limit: 2, Frame: FrameMonthly}}}, ""},
		{"bad frame", Settings{Identifiers: []IdentifierRule{{Type: "email", Frame: "hourly"}}}, "identifiers[0].frame"},
		{"uppercase type", Settings{Identifiers: []IdentifierRule{{Type: "Email"}}}, "identifiers[0].type"},
		{"twice", Settings{Identifiers: []IdentifierRule{{Type: "email"}, {Type: "email"}}}, "identifiers[1].type"},
		{"group_id", Settings{Identifiers: []IdentifierRule{{Type: "group_id"}}}, "identifiers[0].type"},
		{"negative limit", Settings{Identifiers: []IdentifierRule{{Type: "email", Limit: -1}}}, "identifiers[0].limit"},
		{"bad pattern", Settings{BlockedPatterns: []string{"("}}, "blocked_patterns[0]"},
		{"bad type pattern", Settings{Identifiers: []IdentifierRule{{Type: "email", BlockedPatterns: []string{"[a"}}}}, "identifiers[0].blocked_patterns[0]"},
		{"default type as account", Settings{Identifiers: []IdentifierRule{{Type: "email", Collection: Accounts}}}, "identifiers[0].collection"},
		{"bad collection", Settings{Identifiers: []IdentifierRule{{Type: "crm", Collection: "people"}}}, "identifiers[0].collection"},
		{"merges", Settings{MaxMerges: -3}, "max_merges"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probs := tc.s.Check()
			_, err := tc.s.Compile()
			if tc.want == "" {
				if len(probs) > 0 || err != nil {
					t.Fatalf("problems %v, compile %v", probs, err)
				}
				return
			}
			if len(probs) == 0 || probs[0].Path != tc.want || err == nil {
				t.Fatalf("problems %v, compile %v; want one at %s", probs, err, tc.want)
			}
		})
	}
}

func TestPriorityOrder(t *testing.T) {
	r, err := Settings{Identifiers: []IdentifierRule{{Type: "phone", Priority: 3}, {Type: "email", Priority: 5}}}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	ids := []ID{{"ios.id", "d"}, {"email", "e"}, {"anonymous_id", "a"}, {"phone", "p"}, {"user_id", "u"}}
	r.sort(ids)
	var got []string
	for _, id := range ids {
		got = append(got, id.Type)
	}
	if strings.Join(got, ",") != "user_id,phone,email,anonymous_id,ios.id" {
		t.Errorf("order %v", got)
	}
}

func TestExtract(t *testing.T) {
	rules, err := Settings{Identifiers: []IdentifierRule{{Type: "phone"}, {Type: "org_key", Collection: Accounts}}}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, json string
		users      string
		accounts   string
		previous   string
	}{
		{"track", `{"type":"track","userId":"u1","anonymousId":"a1","properties":{"email":"p@x.io"}}`,
			"user_id:u1 email:p@x.io anonymous_id:a1", "", ""},
		{"numeric user id", `{"type":"track","userId":42}`, "user_id:42", "", ""},
		{"identify traits", `{"type":"identify","userId":"u1","traits":{"email":"t@x.io","phone":"+1"},"context":{"traits":{"email":"c@x.io"}}}`,
			"user_id:u1 email:t@x.io email:c@x.io phone:+1", "", ""},
		{"traits of a track are not the user's", `{"type":"track","anonymousId":"a","traits":{"email":"no@x.io"}}`, "anonymous_id:a", "", ""},
		{"ios device", `{"type":"track","anonymousId":"a","context":{"device":{"type":"iOS","id":"D","advertisingId":"AD","adTrackingEnabled":true,"token":"T"}}}`,
			"anonymous_id:a ios.id:D ios.idfa:AD ios.push_token:T", "", ""},
		{"no idfa without tracking", `{"type":"track","anonymousId":"a","context":{"device":{"type":"android","id":"D","advertisingId":"AD"}}}`,
			"android.id:D anonymous_id:a", "", ""},
		{"zero idfa blocked", `{"type":"track","anonymousId":"a","context":{"device":{"type":"ios","advertisingId":"00000000-0000-0000-0000-000000000000","adTrackingEnabled":true}}}`,
			"anonymous_id:a", "", ""},
		{"external ids", `{"type":"track","anonymousId":"a","context":{"externalIds":[{"id":"9","type":"CRM_ID","collection":"users","encoding":"none"},{"id":"o1","type":"org_ref","collection":"accounts","encoding":"none"},{"id":"x","type":"t"}]}}`,
			"anonymous_id:a crm_id:9", "org_ref:o1", ""},
		{"group", `{"type":"group","userId":"u","groupId":"g1","traits":{"org_key":"k"}}`, "user_id:u", "group_id:g1", ""},
		{"custom account id from properties", `{"type":"track","userId":"u","properties":{"org_key":"k2"}}`, "user_id:u", "org_key:k2", ""},
		{"alias", `{"type":"alias","userId":"new","previousId":"old"}`, "user_id:new", "", "old"},
		{"blocked alias", `{"type":"alias","userId":"new","previousId":"null"}`, "user_id:new", "", ""},
		{"user id equal to anonymous id", `{"type":"identify","userId":"same","anonymousId":"same"}`, "anonymous_id:same", "", ""},
		{"ga client id", `{"type":"page","anonymousId":"a","integrations":{"Google Analytics":{"clientId":"123.456"}}}`, "anonymous_id:a ga_client_id:123.456", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := event.Decode([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			ex := rules.Extract(doc)
			if got := join(ex.Users); got != tc.users {
				t.Errorf("users %q, want %q", got, tc.users)
			}
			if got := join(ex.Accounts); got != tc.accounts {
				t.Errorf("accounts %q, want %q", got, tc.accounts)
			}
			if ex.PreviousID != tc.previous {
				t.Errorf("previous %q, want %q", ex.PreviousID, tc.previous)
			}
		})
	}
}

func join(ids []ID) string {
	var s []string
	for _, id := range ids {
		s = append(s, id.String())
	}
	return strings.Join(s, " ")
}
