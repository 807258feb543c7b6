package aggregate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// fixture applies events to a store and answers questions about the graph.
type fixture struct {
	t   *testing.T
	db  *store.DB
	res *Resolver
	n   int
	at  time.Time
}

func newFixture(t *testing.T, db *store.DB, s identity.Settings) *fixture {
	t.Helper()
	rules, err := s.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: db, res: NewResolver(db, func() *identity.Rules { return rules }, identity.Options{}, storetest.Logger(t)),
		at: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
}

// rec builds an event of type typ from a JSON object literal's fields,
// with a fresh messageId and a timestamp one minute after the last.
func (f *fixture) rec(typ, fields string) Record {
	f.n++
	f.at = f.at.Add(time.Minute)
	var m map[string]any
	if err := json.Unmarshal([]byte("{"+fields+"}"), &m); err != nil {
		f.t.Fatalf("bad fields %s: %v", fields, err)
	}
	m["type"] = typ
	if _, ok := m["messageId"]; !ok {
		m["messageId"] = fmt.Sprintf("m%04d", f.n)
	}
	if _, ok := m["timestamp"]; !ok {
		m["timestamp"] = f.at.Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(m)
	return Record{Source: "web", JSON: b}
}

func (f *fixture) apply(recs ...Record) Counts {
	f.t.Helper()
	c, err := f.res.Apply(context.Background(), recs, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// profile returns the profile of "type:value" in users, 0 if none.
func (f *fixture) profile(id string) identity.ProfileID {
	f.t.Helper()
	return f.profileIn(identity.Users, id)
}

func (f *fixture) profileIn(coll, id string) identity.ProfileID {
	f.t.Helper()
	typ, val, _ := strings.Cut(id, ":")
	var p identity.ProfileID
	err := f.db.SQL().QueryRow(f.db.Rebind(`SELECT profile_id FROM profile_ids WHERE collection = ? AND type = ? AND value = ?`), coll, typ, val).Scan(&p)
	if err != nil {
		return 0
	}
	return p
}

func (f *fixture) live() int {
	f.t.Helper()
	var n int
	if err := f.db.SQL().QueryRow(`SELECT COUNT(*) FROM profiles WHERE merged_into IS NULL AND collection = 'users'`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) same(ids ...string) {
	f.t.Helper()
	p := f.profile(ids[0])
	if p == 0 {
		f.t.Fatalf("%s has no profile", ids[0])
	}
	for _, id := range ids[1:] {
		if q := f.profile(id); q != p {
			f.t.Errorf("%s is on profile %v, %s on %v: want one profile", ids[0], p, id, q)
		}
	}
}

func (f *fixture) apart(a, b string) {
	f.t.Helper()
	pa, pb := f.profile(a), f.profile(b)
	if pa == 0 || pb == 0 || pa == pb {
		f.t.Errorf("%s on %v and %s on %v: want two profiles", a, pa, b, pb)
	}
}

func (f *fixture) absent(id string) {
	f.t.Helper()
	if p := f.profile(id); p != 0 {
		f.t.Errorf("%s is an identifier of %v; want it not promoted", id, p)
	}
}

func TestResolveScenarios(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Run("anonymous then identified", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			f.apply(f.rec("track", `"anonymousId":"a-first","event":"Viewed"`))
			f.apply(f.rec("identify", `"anonymousId":"a-first","userId":"u-first","traits":{"email":"first@example.com"}`))
			f.same("anonymous_id:a-first", "user_id:u-first", "email:first@example.com")
		})
		t.Run("two anonymous histories merge on identify", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			before := f.live()
			f.apply(f.rec("track", `"anonymousId":"a-phone","event":"Viewed"`), f.rec("track", `"anonymousId":"a-laptop","event":"Viewed"`))
			f.apply(f.rec("identify", `"anonymousId":"a-phone","userId":"u-merge"`))
			c := f.apply(f.rec("track", `"anonymousId":"a-laptop","userId":"u-merge","event":"Bought"`))
			if c.Merges != 1 {
				t.Errorf("merges = %d, want 1", c.Merges)
			}
			f.same("anonymous_id:a-phone", "anonymous_id:a-laptop", "user_id:u-merge")
			if got := f.live() - before; got != 1 {
				t.Errorf("%d live profiles, want 1", got)
			}
		})
		t.Run("shared device used by two users", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			dev := `"context":{"device":{"id":"kiosk-1","type":"ios"}}`
			f.apply(f.rec("identify", `"anonymousId":"a-kiosk-1","userId":"u-alice",`+dev))
			f.apply(f.rec("identify", `"anonymousId":"a-kiosk-2","userId":"u-bob",`+dev))
			f.apart("user_id:u-alice", "user_id:u-bob")
			f.same("user_id:u-alice", "ios.id:kiosk-1", "anonymous_id:a-kiosk-1")
			f.same("user_id:u-bob", "anonymous_id:a-kiosk-2")
			// An anonymous event on the device that names bob's anonymous id
			// goes to bob, and does not pull alice in.
			f.apply(f.rec("track", `"anonymousId":"a-kiosk-2","event":"Viewed",`+dev))
			f.apart("user_id:u-alice", "user_id:u-bob")
		})
		t.Run("identify with the anonymous id as userId", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			f.apply(f.rec("identify", `"anonymousId":"a-self","userId":"a-self"`))
			f.absent("user_id:a-self")
			f.apply(f.rec("identify", `"anonymousId":"a-self","userId":"u-real"`))
			f.same("anonymous_id:a-self", "user_id:u-real")
		})
		t.Run("alias between two identified users does not merge them", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			f.apply(f.rec("identify", `"anonymousId":"a-carol","userId":"u-carol"`))
			f.apply(f.rec("identify", `"anonymousId":"a-dave","userId":"u-dave"`))
			c := f.apply(f.rec("alias", `"previousId":"u-carol","userId":"u-dave"`))
			if c.Merges != 0 || c.Dropped != 1 {
				t.Errorf("alias: %v; want no merge and one identifier dropped", c)
			}
			f.apart("user_id:u-carol", "user_id:u-dave")
		})
		t.Run("alias from an anonymous id merges", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			f.apply(f.rec("track", `"anonymousId":"a-erin","event":"Viewed"`))
			f.apply(f.rec("identify", `"anonymousId":"a-erin2","userId":"u-erin"`))
			f.apply(f.rec("alias", `"previousId":"a-erin","userId":"u-erin","anonymousId":"a-erin2"`))
			f.same("anonymous_id:a-erin", "user_id:u-erin", "anonymous_id:a-erin2")
		})
		t.Run("alias of its own anonymous id", func(t *testing.T) {
			// analytics.js: alias(userId) sends previousId = its anonymousId.
			f := newFixture(t, db, identity.Settings{})
			c := f.apply(f.rec("alias", `"anonymousId":"a-self-alias","previousId":"a-self-alias","userId":"u-self-alias"`))
			if c.Events != 1 || c.Created != 1 {
				t.Errorf("alias: %v", c)
			}
			f.same("anonymous_id:a-self-alias", "user_id:u-self-alias")
		})
		t.Run("alias from an old user id merges when user_id allows two", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{Identifiers: []identity.IdentifierRule{{Type: "user_id", Limit: 2}}})
			f.apply(f.rec("identify", `"anonymousId":"a-old","userId":"u-old-id"`))
			f.apply(f.rec("identify", `"anonymousId":"a-new","userId":"u-new-id"`))
			f.apply(f.rec("alias", `"previousId":"u-old-id","userId":"u-new-id"`))
			f.same("user_id:u-old-id", "user_id:u-new-id")
		})
		t.Run("blocked values", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			for _, v := range []string{"null", "0", "anonymous", "NULL", "00000000-0000-0000-0000-000000000000", "-1", "undefined"} {
				f.apply(f.rec("identify", fmt.Sprintf(`"anonymousId":"a-blocked-%s","userId":%q,"traits":{"email":%q}`, v, v, v)))
				f.absent("user_id:" + v)
				f.absent("email:" + v)
			}
			f.apart("anonymous_id:a-blocked-null", "anonymous_id:a-blocked-0")
			c := f.apply(f.rec("track", `"anonymousId":"null","event":"x"`))
			if c.Unresolved != 1 {
				t.Errorf("an event with only a blocked id: %v, want unresolved", c)
			}
		})
		t.Run("custom blocked value and pattern", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{
				BlockedValues: []string{"guest"},
				Identifiers:   []identity.IdentifierRule{{Type: "email", BlockedPatterns: []string{`@example\.test$`}}},
			})
			f.apply(f.rec("identify", `"anonymousId":"a-custom","userId":"guest","traits":{"email":"x@example.test"}`))
			f.absent("user_id:guest")
			f.absent("email:x@example.test")
			f.apply(f.rec("identify", `"anonymousId":"a-custom2","userId":"null"`))
			if f.profile("user_id:null") == 0 {
				t.Error(`"null" is no longer blocked once blocked_values is set, but was not promoted`)
			}
		})
		t.Run("limit with a time frame", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{Identifiers: []identity.IdentifierRule{{Type: "anonymous_id", Limit: 2, Frame: identity.FrameDaily}}})
			f.apply(f.rec("identify", `"anonymousId":"a-frame-1","userId":"u-frame"`))
			f.apply(f.rec("identify", `"anonymousId":"a-frame-2","userId":"u-frame"`))
			c := f.apply(f.rec("identify", `"anonymousId":"a-frame-3","userId":"u-frame"`))
			if c.Dropped != 1 {
				t.Errorf("third anonymous id the same day: %v, want it dropped", c)
			}
			f.absent("anonymous_id:a-frame-3")
			f.at = f.at.Add(25 * time.Hour)
			f.apply(f.rec("identify", `"anonymousId":"a-frame-4","userId":"u-frame"`))
			f.same("user_id:u-frame", "anonymous_id:a-frame-4")
		})
		t.Run("new user id with a known email makes a new profile", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			f.apply(f.rec("identify", `"anonymousId":"a-fam-1","userId":"u-parent","traits":{"email":"family@example.com"}`))
			f.apply(f.rec("identify", `"anonymousId":"a-fam-2","userId":"u-child","traits":{"email":"family@example.com"}`))
			f.apart("user_id:u-parent", "user_id:u-child")
			f.same("user_id:u-parent", "email:family@example.com")
		})
		t.Run("merge cap", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{MaxMerges: 1, Identifiers: []identity.IdentifierRule{{Type: "anonymous_id", Limit: 10}}})
			f.apply(f.rec("track", `"anonymousId":"a-cap-1","event":"x"`), f.rec("track", `"anonymousId":"a-cap-2","event":"x"`), f.rec("track", `"anonymousId":"a-cap-3","event":"x"`))
			f.apply(f.rec("identify", `"anonymousId":"a-cap-1","userId":"u-cap"`))
			f.apply(f.rec("track", `"anonymousId":"a-cap-2","userId":"u-cap","event":"x"`))
			c := f.apply(f.rec("track", `"anonymousId":"a-cap-3","userId":"u-cap","event":"x"`))
			if c.Capped != 1 || c.Merges != 0 {
				t.Errorf("second merge past a cap of 1: %v", c)
			}
			f.apart("user_id:u-cap", "anonymous_id:a-cap-3")
		})
		t.Run("external ids and devices", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{Identifiers: []identity.IdentifierRule{{Type: "phone"}}})
			f.apply(f.rec("track", `"anonymousId":"a-ext","event":"x","properties":{"phone":"+15550100"},"context":{"externalIds":[{"id":"crm-9","type":"crm_id","collection":"users","encoding":"none"},{"id":"bad","type":"nope"}],"device":{"type":"android","id":"dev-a","advertisingId":"ad-1","adTrackingEnabled":true,"token":"push-1"}},"integrations":{"Google Analytics":{"clientId":"ga.1"}}`))
			f.same("anonymous_id:a-ext", "crm_id:crm-9", "phone:+15550100", "android.id:dev-a", "android.idfa:ad-1", "android.push_token:push-1", "ga_client_id:ga.1")
			f.absent("nope:bad")
		})
		t.Run("group links a user to an account", func(t *testing.T) {
			f := newFixture(t, db, identity.Settings{})
			f.apply(f.rec("group", `"userId":"u-grp","groupId":"acme","traits":{"plan":"pro"}`))
			acc := f.profileIn(identity.Accounts, "group_id:acme")
			if acc == 0 {
				t.Fatal("no account profile for group_id:acme")
			}
			var n int
			if err := db.SQL().QueryRow(db.Rebind(`SELECT COUNT(*) FROM profile_links WHERE user_id = ? AND account_id = ?`), f.profile("user_id:u-grp"), acc).Scan(&n); err != nil || n != 1 {
				t.Errorf("links = %d (%v), want 1", n, err)
			}
		})
	})
}
