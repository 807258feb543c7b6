package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/confluxcdp/conflux/internal/store"
)

// ProfileID is a profile's number in the state store. It never changes
// for the life of the profile; a profile merged away keeps its number,
// which then resolves to the survivor.
type ProfileID int64

// String renders the id as the APIs show it: prf_<n>.
func (p ProfileID) String() string { return "prf_" + strconv.FormatInt(int64(p), 10) }

// ParseProfileID reads a [ProfileID.String] back.
func ParseProfileID(s string) (ProfileID, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "prf_"), 10, 64)
	if err != nil || n <= 0 || !strings.HasPrefix(s, "prf_") {
		return 0, false
	}
	return ProfileID(n), true
}

// Event is what the graph records about the event being resolved.
type Event struct {
	MessageID string
	SourceID  string
	// At is the event's timestamp, unix milliseconds: the time frames of
	// the limits and the metadata's first and last events go by it.
	At int64
	// Now is the processing time, unix milliseconds.
	Now int64
}

// Merge is one profile merged into another.
type Merge struct {
	Into, From ProfileID
	// Cause is the identifier of the event that matched From.
	Cause ID
}

// Resolution is where an event's identifiers led.
type Resolution struct {
	Profile ProfileID
	// Created is set when the event made a new profile.
	Created bool
	// Added are the identifiers the profile gained.
	Added []ID
	// Dropped are the event's identifiers left out because keeping them
	// would have broken a limit (spec §6.3).
	Dropped []ID
	// Merges are the profiles merged into Profile, in order.
	Merges []Merge
	// Capped is set when a cap (merges or mappings per profile) kept the
	// event from merging or adding identifiers.
	Capped bool
}

// Options size a [Graph]'s caches.
type Options struct {
	// CachedIDs bounds the identifiers whose profile is kept in memory.
	// Default: 1,000,000 (about 120 MB).
	CachedIDs int
	// CachedProfiles bounds the profiles whose identifiers are kept in
	// memory for the limits. Default: 100,000.
	CachedProfiles int
}

// Graph is the identity graph in the state store, with the caches of its
// writer. There is one writer per graph: the caches are the truth between
// its transactions, and [Graph.Reset] must be called when one fails.
type Graph struct {
	db    *store.DB
	rules func() *Rules
	opts  Options
	ids   map[string]ProfileID // 0: known to be absent
	profs map[ProfileID]*profState
}

// profState is what the limits need of one profile.
type profState struct {
	ids    []idRow
	merges int
}

type idRow struct {
	ID
	firstSeen int64
}

// NewGraph returns the graph in db under the rules rules returns (read
// once per event).
func NewGraph(db *store.DB, rules func() *Rules, opts Options) *Graph {
	if opts.CachedIDs <= 0 {
		opts.CachedIDs = 1_000_000
	}
	if opts.CachedProfiles <= 0 {
		opts.CachedProfiles = 100_000
	}
	g := &Graph{db: db, rules: rules, opts: opts}
	g.Reset()
	return g
}

// Reset drops the caches: after a failed transaction, what they hold may
// not be in the store.
func (g *Graph) Reset() {
	g.ids = make(map[string]ProfileID)
	g.profs = make(map[ProfileID]*profState)
}

// Rules returns the rules in force.
func (g *Graph) Rules() *Rules { return g.rules() }

// Tx is one transaction of the graph's writer.
type Tx struct {
	g   *Graph
	ctx context.Context
	tx  *sql.Tx
	r   *Rules
	db  *store.DB
}

// Begin wraps tx, a transaction of the graph's store, for resolving.
func (g *Graph) Begin(ctx context.Context, tx *sql.Tx) *Tx {
	return &Tx{g: g, ctx: ctx, tx: tx, r: g.rules(), db: g.db}
}

func idKey(coll string, id ID) string { return coll + "\x00" + id.Type + "\x00" + id.Value }

// lookup returns the profile an identifier belongs to, 0 if none.
func (t *Tx) lookup(coll string, id ID) (ProfileID, error) {
	k := idKey(coll, id)
	if p, ok := t.g.ids[k]; ok {
		return p, nil
	}
	var p ProfileID
	err := t.tx.QueryRowContext(t.ctx, t.db.Rebind(`SELECT profile_id FROM profile_ids WHERE collection = ? AND type = ? AND value = ?`),
		coll, id.Type, id.Value).Scan(&p)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("looking up identifier %s: %w", id, err)
	}
	t.g.remember(k, p)
	return p, nil
}

func (g *Graph) remember(k string, p ProfileID) {
	if len(g.ids) >= g.opts.CachedIDs {
		n := 0
		for k := range g.ids { // map order: a cheap random eviction
			delete(g.ids, k)
			if n++; n >= g.opts.CachedIDs/8 {
				break
			}
		}
	}
	g.ids[k] = p
}

// state returns what the limits need of profile p.
func (t *Tx) state(p ProfileID) (*profState, error) {
	if st, ok := t.g.profs[p]; ok {
		return st, nil
	}
	st := &profState{}
	if err := t.tx.QueryRowContext(t.ctx, t.db.Rebind(`SELECT merges FROM profiles WHERE id = ?`), p).Scan(&st.merges); err != nil {
		return nil, fmt.Errorf("reading profile %s: %w", p, err)
	}
	rows, err := t.tx.QueryContext(t.ctx, t.db.Rebind(`SELECT type, value, first_seen FROM profile_ids WHERE profile_id = ?`), p)
	if err != nil {
		return nil, fmt.Errorf("reading identifiers of profile %s: %w", p, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r idRow
		if err := rows.Scan(&r.Type, &r.Value, &r.firstSeen); err != nil {
			return nil, fmt.Errorf("reading identifiers of profile %s: %w", p, err)
		}
		st.ids = append(st.ids, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading identifiers of profile %s: %w", p, err)
	}
	if len(t.g.profs) >= t.g.opts.CachedProfiles {
		n := 0
		for k := range t.g.profs {
			delete(t.g.profs, k)
			if n++; n >= t.g.opts.CachedProfiles/8 {
				break
			}
		}
	}
	t.g.profs[p] = st
	return st, nil
}

// AliasID returns the identifier an alias's previousId names: a known
// user_id, else a known anonymous_id, else (a previousId never seen) an
// anonymous_id, which is what SDKs send as previousId.
func (t *Tx) AliasID(prev string) (ID, error) {
	for _, typ := range []string{TypeUserID, TypeAnonymousID} {
		id := ID{Type: typ, Value: prev}
		p, err := t.lookup(Users, id)
		if err != nil {
			return ID{}, err
		}
		if p != 0 {
			return id, nil
		}
	}
	return ID{Type: TypeAnonymousID, Value: prev}, nil
}

// Resolve finds or makes the profile of collection coll that ids (an
// event's identifiers) belong to, merging and adding identifiers under
// the rules (spec §6.3): no match makes a profile, one match attaches,
// several merge into the oldest; when keeping every identifier would
// break a limit, the lowest-priority one is dropped and matching retried.
// ids must not be empty.
func (t *Tx) Resolve(coll string, ids []ID, ev Event) (Resolution, error) {
	var res Resolution
	ids = slices.Clone(ids)
	t.r.sort(ids)
	for {
		matched := make([]ProfileID, len(ids))
		var profiles []ProfileID
		for i, id := range ids {
			p, err := t.lookup(coll, id)
			if err != nil {
				return res, err
			}
			matched[i] = p
			if p != 0 && !slices.Contains(profiles, p) {
				profiles = append(profiles, p)
			}
		}
		var fresh []ID
		for i, id := range ids {
			if matched[i] == 0 {
				fresh = append(fresh, id)
			}
		}
		if len(profiles) == 0 {
			keep, drop := t.fitLimits(fresh, ev.At)
			res.Dropped = append(res.Dropped, drop...)
			p, err := t.create(coll, ev)
			if err != nil {
				return res, err
			}
			res.Profile, res.Created = p, true
			return res, t.add(coll, p, keep, ev, &res)
		}
		states := make([]*profState, len(profiles))
		for i, p := range profiles {
			st, err := t.state(p)
			if err != nil {
				return res, err
			}
			states[i] = st
		}
		if t.breaks(states, fresh, ev.At) {
			res.Dropped = append(res.Dropped, ids[len(ids)-1])
			ids = ids[:len(ids)-1]
			continue
		}
		if len(profiles) > 1 {
			survivor, sst := profiles[0], states[0]
			for i, p := range profiles {
				if p < survivor {
					survivor, sst = p, states[i]
				}
			}
			merges := sst.merges
			for i, p := range profiles {
				if p != survivor {
					merges += states[i].merges + 1
				}
			}
			if merges > t.r.maxMerges {
				// Past the cap the event still resolves, to the profile of
				// its highest-priority identifier, and changes nothing.
				res.Profile, res.Capped = matched[slices.IndexFunc(matched, func(p ProfileID) bool { return p != 0 })], true
				return res, nil
			}
			for i, p := range profiles {
				if p == survivor {
					continue
				}
				cause := ids[slices.Index(matched, p)]
				if err := t.merge(coll, survivor, sst, p, states[i], cause, ev); err != nil {
					return res, err
				}
				res.Merges = append(res.Merges, Merge{Into: survivor, From: p, Cause: cause})
			}
			profiles = []ProfileID{survivor}
			states = []*profState{sst}
		}
		res.Profile = profiles[0]
		if len(fresh) > 0 && len(states[0].ids)+len(fresh) > t.r.maxMappings {
			res.Capped = true
			return res, nil
		}
		return res, t.add(coll, res.Profile, fresh, ev, &res)
	}
}

// breaks reports whether putting the profiles of states and the fresh
// identifiers together would break a limit: a type with more values
// gained within its frame than its limit, more than any one of the
// profiles already has (so that rules tightened later do not hold back
// events that add nothing of that type).
func (t *Tx) breaks(states []*profState, fresh []ID, at int64) bool {
	if len(states) == 1 && len(fresh) == 0 {
		return false
	}
	total := map[string]int{}
	most := map[string]int{}
	counted := map[string]bool{}
	for _, st := range states {
		own := map[string]int{}
		for _, r := range st.ids {
			if t.inFrame(r.Type, r.firstSeen, at) {
				own[r.Type]++
			}
		}
		for typ, n := range own {
			total[typ] += n
			most[typ] = max(most[typ], n)
		}
	}
	for _, id := range fresh {
		total[id.Type]++
		counted[id.Type] = true
	}
	for typ, n := range total {
		if n > t.r.rule(typ).limit && (n > most[typ] || counted[typ]) {
			return true
		}
	}
	return false
}

// inFrame reports whether a value of type typ gained at firstSeen counts
// against the limit for an event at at.
func (t *Tx) inFrame(typ string, firstSeen, at int64) bool {
	span := t.r.rule(typ).span
	return span == 0 || firstSeen >= at-span.Milliseconds()
}

// fitLimits keeps, of a new profile's identifiers, as many of each type
// as its limit allows (the first ones, in priority order).
func (t *Tx) fitLimits(ids []ID, _ int64) (keep, drop []ID) {
	n := map[string]int{}
	for _, id := range ids {
		if n[id.Type] >= t.r.rule(id.Type).limit {
			drop = append(drop, id)
			continue
		}
		n[id.Type]++
		keep = append(keep, id)
	}
	return keep, drop
}

// create inserts a new profile, first and last seen at ev.
func (t *Tx) create(coll string, ev Event) (ProfileID, error) {
	var p ProfileID
	err := t.tx.QueryRowContext(t.ctx, t.db.Rebind(`INSERT INTO profiles
	(collection, merges, created_at, updated_at, first_at, first_message_id, first_source_id, last_at, last_message_id, last_source_id)
	VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		coll, ev.Now, ev.Now, ev.At, ev.MessageID, ev.SourceID, ev.At, ev.MessageID, ev.SourceID).Scan(&p)
	if err != nil {
		return 0, fmt.Errorf("creating a %s profile for message %s: %w", coll, ev.MessageID, err)
	}
	t.g.profs[p] = &profState{}
	return p, nil
}

// add gives profile p the identifiers ids.
func (t *Tx) add(coll string, p ProfileID, ids []ID, ev Event, res *Resolution) error {
	if len(ids) == 0 {
		return nil
	}
	st, err := t.state(p)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := t.tx.ExecContext(t.ctx, t.db.Rebind(`INSERT INTO profile_ids
	(collection, type, value, profile_id, source_id, first_seen, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			coll, id.Type, id.Value, p, ev.SourceID, ev.At, ev.Now); err != nil {
			return fmt.Errorf("adding identifier %s to profile %s: %w", id, p, err)
		}
		st.ids = append(st.ids, idRow{ID: id, firstSeen: ev.At})
		t.g.remember(idKey(coll, id), p)
		res.Added = append(res.Added, id)
	}
	return nil
}

// merge moves profile from's identifiers into into and records it; the
// caller moves what else belongs to a profile (traits, events, links).
func (t *Tx) merge(coll string, into ProfileID, ist *profState, from ProfileID, fst *profState, cause ID, ev Event) error {
	stmts := []struct {
		q    string
		args []any
	}{
		{`UPDATE profile_ids SET profile_id = ? WHERE profile_id = ?`, []any{into, from}},
		{`UPDATE profiles SET merged_into = ? WHERE merged_into = ?`, []any{into, from}},
		{`UPDATE profiles SET merged_into = ?, updated_at = ? WHERE id = ?`, []any{into, ev.Now, from}},
		{`UPDATE profiles SET merges = merges + ? WHERE id = ?`, []any{fst.merges + 1, into}},
		{`INSERT INTO profile_merges (collection, into_id, from_id, message_id, source_id, id_type, id_value, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			[]any{coll, into, from, ev.MessageID, ev.SourceID, cause.Type, cause.Value, ev.Now}},
	}
	for _, s := range stmts {
		if _, err := t.tx.ExecContext(t.ctx, t.db.Rebind(s.q), s.args...); err != nil {
			return fmt.Errorf("merging profile %s into %s: %w", from, into, err)
		}
	}
	if err := t.mergeMetadata(into, from); err != nil {
		return err
	}
	for _, r := range fst.ids {
		t.g.remember(idKey(coll, r.ID), into)
	}
	ist.ids = append(ist.ids, fst.ids...)
	ist.merges += fst.merges + 1
	delete(t.g.profs, from)
	return nil
}

// mergeMetadata gives into the earlier first and the later last event of
// the two profiles.
func (t *Tx) mergeMetadata(into, from ProfileID) error {
	var m Touch
	m.Profile = into
	err := t.tx.QueryRowContext(t.ctx, t.db.Rebind(`SELECT first_at, first_message_id, first_source_id, last_at, last_message_id, last_source_id, updated_at
	FROM profiles WHERE id = ?`), from).Scan(&m.FirstAt, &m.FirstMessageID, &m.FirstSourceID, &m.LastAt, &m.LastMessageID, &m.LastSourceID, &m.Now)
	if err != nil {
		return fmt.Errorf("reading profile %s to merge it: %w", from, err)
	}
	return t.Touch(m)
}

// Touch is the events a batch saw of one profile, for its metadata.
type Touch struct {
	Profile                       ProfileID
	FirstAt                       int64
	FirstMessageID, FirstSourceID string
	LastAt                        int64
	LastMessageID, LastSourceID   string
	Now                           int64
}

// Touch brings a profile's metadata up to m: the earlier first event, the
// later last one, by event time.
func (t *Tx) Touch(m Touch) error {
	_, err := t.tx.ExecContext(t.ctx, t.db.Rebind(`UPDATE profiles SET
	updated_at = CASE WHEN updated_at < ? THEN ? ELSE updated_at END,
	first_message_id = CASE WHEN ? < first_at THEN ? ELSE first_message_id END,
	first_source_id = CASE WHEN ? < first_at THEN ? ELSE first_source_id END,
	first_at = CASE WHEN ? < first_at THEN ? ELSE first_at END,
	last_message_id = CASE WHEN ? >= last_at THEN ? ELSE last_message_id END,
	last_source_id = CASE WHEN ? >= last_at THEN ? ELSE last_source_id END,
	last_at = CASE WHEN ? >= last_at THEN ? ELSE last_at END
	WHERE id = ?`),
		m.Now, m.Now,
		m.FirstAt, m.FirstMessageID, m.FirstAt, m.FirstSourceID, m.FirstAt, m.FirstAt,
		m.LastAt, m.LastMessageID, m.LastAt, m.LastSourceID, m.LastAt, m.LastAt,
		m.Profile)
	if err != nil {
		return fmt.Errorf("updating the metadata of profile %s: %w", m.Profile, err)
	}
	return nil
}

// Rules returns the rules this transaction resolves under.
func (t *Tx) Rules() *Rules { return t.r }
