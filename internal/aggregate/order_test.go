package aggregate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/aggregate/profile"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// story is a generated history of users: events carrying subsets of each
// user's identifiers, within the default limits, so that no limit binds
// and the graph must end the same whatever the order.
type story struct {
	recs []Record
	ids  []string // every identifier "type:value" the events carry
	// links are the pairs of identifiers that appear in one event: the
	// expected profiles are the connected components they make.
	links [][2]string
}

func newStory(seed uint64, users int) *story {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	st := &story{}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	add := func(typ, body string, ids ...string) {
		n++
		at := base.Add(time.Duration(rng.IntN(24*3600)) * time.Second)
		st.recs = append(st.recs, Record{Source: "web", JSON: fmt.Appendf(nil,
			`{"type":%q,"messageId":"m%05d","timestamp":%q,%s}`, typ, n, at.Format(time.RFC3339), body)})
		for i := range ids {
			if !slices.Contains(st.ids, ids[i]) {
				st.ids = append(st.ids, ids[i])
			}
			if i > 0 {
				st.links = append(st.links, [2]string{ids[0], ids[i]})
			}
		}
	}
	for u := range users {
		anons := make([]string, 1+rng.IntN(3))
		for i := range anons {
			anons[i] = fmt.Sprintf("anon-%d-%d", u, i)
		}
		uid := ""
		if rng.IntN(5) > 0 {
			uid = fmt.Sprintf("user-%d", u)
		}
		email := ""
		if rng.IntN(2) == 0 {
			email = fmt.Sprintf("u%d@example.com", u)
		}
		dev := fmt.Sprintf("dev-%d", u)
		for _, a := range anons {
			for range 1 + rng.IntN(3) {
				add("track", fmt.Sprintf(`"anonymousId":%q,"event":"Viewed"`, a), "anonymous_id:"+a)
			}
			if rng.IntN(3) == 0 {
				add("track", fmt.Sprintf(`"anonymousId":%q,"event":"Opened","context":{"device":{"type":"ios","id":%q}}`, a, dev),
					"anonymous_id:"+a, "ios.id:"+dev)
			}
			if uid != "" && rng.IntN(4) > 0 {
				traits := fmt.Sprintf(`{"plan":"p%d","seen":%d}`, rng.IntN(3), rng.IntN(1000))
				ids := []string{"user_id:" + uid, "anonymous_id:" + a}
				if email != "" {
					traits = fmt.Sprintf(`{"plan":"p%d","email":%q}`, rng.IntN(3), email)
					ids = append(ids, "email:"+email)
				}
				add("identify", fmt.Sprintf(`"anonymousId":%q,"userId":%q,"traits":%s`, a, uid, traits), ids...)
			}
		}
	}
	return st
}

// components returns, for each identifier, the smallest identifier of its
// connected component: the expected partition.
func (st *story) components() map[string]string {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		return x
	}
	for _, id := range st.ids {
		parent[id] = id
	}
	for _, l := range st.links {
		a, b := find(l[0]), find(l[1])
		if a != b {
			parent[max(a, b)] = min(a, b)
		}
	}
	out := map[string]string{}
	for _, id := range st.ids {
		out[id] = find(id)
	}
	return out
}

// outcome is a store's graph and traits in a form that does not depend
// on profile numbers: each identifier with the smallest identifier of its
// profile, and each profile's traits under that name.
func outcome(t *testing.T, db *store.DB) (partition map[string]string, traits map[string]string, live int) {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT profile_id, type, value FROM profile_ids WHERE collection = 'users'`)
	if err != nil {
		t.Fatal(err)
	}
	byProfile := map[identity.ProfileID][]string{}
	for rows.Next() {
		var p identity.ProfileID
		var typ, val string
		if err := rows.Scan(&p, &typ, &val); err != nil {
			t.Fatal(err)
		}
		byProfile[p] = append(byProfile[p], typ+":"+val)
	}
	rows.Close()
	partition = map[string]string{}
	name := map[identity.ProfileID]string{}
	for p, ids := range byProfile {
		name[p] = slices.Min(ids)
		for _, id := range ids {
			partition[id] = name[p]
		}
	}
	// Traits as the Profile API reads them, keys in order.
	reader := profile.NewReader(db)
	traits = map[string]string{}
	for p, n := range name {
		list, _, err := reader.Traits(context.Background(), p, nil, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range list {
			traits[n] += tr.Key + "=" + string(tr.Value) + ";"
		}
	}
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM profiles WHERE merged_into IS NULL AND collection = 'users'`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	return partition, traits, live
}

// TestOrderDoesNotMatter applies one generated history in many random
// orders and batchings, and checks that every order ends with the same
// profiles (the connected components of the identifiers the events tie
// together) and the same traits.
func TestOrderDoesNotMatter(t *testing.T) {
	engines := []struct {
		name   string
		open   func(testing.TB) *store.DB
		orders int
	}{
		{"sqlite", func(t testing.TB) *store.DB { return storetest.SQLite(t) }, 12},
		{"postgres", func(t testing.TB) *store.DB { return storetest.Postgres(t) }, 3},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 2; seed++ {
				st := newStory(seed, 40)
				want := st.components()
				var firstTraits map[string]string
				for order := range e.orders {
					db := e.open(t)
					rules := identity.DefaultRules()
					res := NewResolver(db, func() *identity.Rules { return rules }, identity.Options{CachedIDs: 64, CachedProfiles: 16}, nil)
					rng := rand.New(rand.NewPCG(seed, uint64(order)))
					recs := slices.Clone(st.recs)
					if order > 0 {
						rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
					}
					for len(recs) > 0 {
						n := min(len(recs), 1+rng.IntN(20))
						if _, err := res.Apply(context.Background(), recs[:n], nil); err != nil {
							t.Fatal(err)
						}
						recs = recs[n:]
					}
					got, traits, live := outcome(t, db)
					for id, comp := range want {
						if got[id] != comp {
							t.Fatalf("seed %d order %d: %s is in the profile of %s, want %s", seed, order, id, got[id], comp)
						}
					}
					comps := map[string]bool{}
					for _, c := range want {
						comps[c] = true
					}
					if live != len(comps) {
						t.Errorf("seed %d order %d: %d live profiles, want %d", seed, order, live, len(comps))
					}
					if order == 0 {
						firstTraits = traits
						continue
					}
					for p, tr := range firstTraits {
						if traits[p] != tr {
							t.Errorf("seed %d order %d: traits of %s = %s, want %s (as in arrival order)", seed, order, p, traits[p], tr)
						}
					}
					if len(traits) != len(firstTraits) {
						t.Errorf("seed %d order %d: %d profiles with traits, want %d", seed, order, len(traits), len(firstTraits))
					}
				}
				t.Logf("seed %d: %d events, %d identifiers, %d profiles, the same in %d orders", seed, len(st.recs), len(want), len(componentsOf(want)), e.orders)
			}
		})
	}
}

func componentsOf(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}
