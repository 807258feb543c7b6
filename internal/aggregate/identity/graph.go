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
	ids   map[idKey]ProfileID // 0: known to be absent
	profs map[ProfileID]*profState
	// newProfiles and newIDs are the profiles created and the identifiers
	// gained in the current transaction, written at Flush (or before the
	// store is asked about them).
	newProfiles, newIDs *store.Bulk
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
// once per transaction).
func NewGraph(db *store.DB, rules func() *Rules, opts Options) *Graph {
	if opts.CachedIDs <= 0 {
		opts.CachedIDs = 1_000_000
	}
	if opts.CachedProfiles <= 0 {
		opts.CachedProfiles = 100_000
	}
	g := &Graph{db: db, rules: rules, opts: opts,
		newProfiles: db.NewBulk("profiles", `INSERT INTO profiles (id, collection, merges, created_at, updated_at,
	first_at, first_message_id, first_source_id, last_at, last_message_id, last_source_id) VALUES `, `(?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)`, ``),
		newIDs: db.NewBulk("profile identifiers", `INSERT INTO profile_ids (collection, type, value, profile_id, source_id, first_seen, created_at) VALUES `,
			`(?, ?, ?, ?, ?, ?, ?)`, ``),
	}
	g.Reset()
	return g
}

// Reset drops the caches: after a failed transaction, what they hold may
// not be in the store.
func (g *Graph) Reset() {
	g.ids = make(map[idKey]ProfileID)
	g.profs = make(map[ProfileID]*profState)
	g.newProfiles.Reset()
	g.newIDs.Reset()
}

// Tx is one transaction of the graph's writer.
type Tx struct {
	g   *Graph
	ctx context.Context
	tx  *sql.Tx
	r   *Rules
	db  *store.DB
	// next is the id the next profile created gets; 0 until the first
	// creation reads the highest one. The writer is alone (the stage's
	// position claim serialises nodes), so ids are its to hand out.
	next ProfileID
}

// Begin wraps tx, a transaction of the graph's store, for resolving.
func (g *Graph) Begin(ctx context.Context, tx *sql.Tx) *Tx {
	return &Tx{g: g, ctx: ctx, tx: tx, r: g.rules(), db: g.db}
}

// Rules returns the rules this transaction resolves under.
func (t *Tx) Rules() *Rules { return t.r }

// idKey is an identifier of a collection, as the cache keys it. Looking
// one up allocates nothing; remember clones what it keeps, since the
// strings of a decoded event share the memory of the whole log message.
type idKey struct{ coll, typ, value string }

func keyOf(coll string, id ID) idKey { return idKey{coll, id.Type, id.Value} }

// lookup returns the profile an identifier belongs to, 0 if none.
func (t *Tx) lookup(coll string, id ID) (ProfileID, error) {
	k := keyOf(coll, id)
	if p, ok := t.g.ids[k]; ok {
		return p, nil
	}
	if err := t.settle(); err != nil {
		return 0, err
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

// Prefetch looks up, in a few queries, every identifier of coll in ids
// the cache does not hold, so that resolving a batch does not query once
// per new identifier. It asks by type (collection, type, value IN …), the
// primary key's order, which both engines answer with index lookups.
func (t *Tx) Prefetch(coll string, ids []ID) error {
	const per = 500
	byType := map[string][]string{}
	seen := map[idKey]bool{}
	for _, id := range ids {
		k := keyOf(coll, id)
		if _, ok := t.g.ids[k]; !ok && !seen[k] {
			seen[k] = true
			byType[id.Type] = append(byType[id.Type], id.Value)
		}
	}
	if len(byType) > 0 {
		if err := t.settle(); err != nil {
			return err
		}
	}
	for typ, values := range byType {
		for len(values) > 0 {
			chunk := values[:min(per, len(values))]
			values = values[len(chunk):]
			args := make([]any, 0, 2+len(chunk))
			args = append(args, coll, typ)
			for _, v := range chunk {
				t.g.remember(keyOf(coll, ID{typ, v}), 0)
				args = append(args, v)
			}
			q := `SELECT value, profile_id FROM profile_ids WHERE collection = ? AND type = ? AND value IN (` +
				store.Placeholders(len(chunk)) + `)`
			if err := t.scan(q, args, func(rows *sql.Rows) error {
				var v string
				var p ProfileID
				if err := rows.Scan(&v, &p); err != nil {
					return err
				}
				t.g.remember(keyOf(coll, ID{typ, v}), p)
				return nil
			}); err != nil {
				return fmt.Errorf("looking up %d identifiers of type %s: %w", len(chunk), typ, err)
			}
		}
	}
	return nil
}

// Known returns the profile an identifier belongs to as far as the cache
// knows after [Tx.Prefetch]: 0 for none, and false when it does not know.
func (t *Tx) Known(coll string, id ID) (ProfileID, bool) {
	p, ok := t.g.ids[keyOf(coll, id)]
	return p, ok
}

// PrefetchStates loads, in a few queries, what the limits need of the
// profiles ps that the cache does not hold: those an event is about to
// add identifiers to or merge.
func (t *Tx) PrefetchStates(ps []ProfileID) error {
	const per = 500
	var miss []ProfileID
	for _, p := range ps {
		if _, ok := t.g.profs[p]; !ok && p != 0 && !slices.Contains(miss, p) {
			miss = append(miss, p)
		}
	}
	if len(miss) > 0 {
		if err := t.settle(); err != nil {
			return err
		}
	}
	for len(miss) > 0 {
		chunk := miss[:min(per, len(miss))]
		miss = miss[len(chunk):]
		args := make([]any, len(chunk))
		states := make(map[ProfileID]*profState, len(chunk))
		for i, p := range chunk {
			args[i] = p
			states[p] = &profState{}
		}
		in := store.Placeholders(len(chunk))
		if err := t.scan(`SELECT id, merges FROM profiles WHERE id IN (`+in+`)`, args, func(rows *sql.Rows) error {
			var p ProfileID
			var m int
			if err := rows.Scan(&p, &m); err != nil {
				return err
			}
			states[p].merges = m
			return nil
		}); err != nil {
			return fmt.Errorf("reading %d profiles: %w", len(chunk), err)
		}
		if err := t.scan(`SELECT profile_id, type, value, first_seen FROM profile_ids WHERE profile_id IN (`+in+`)`, args, func(rows *sql.Rows) error {
			var p ProfileID
			var r idRow
			if err := rows.Scan(&p, &r.Type, &r.Value, &r.firstSeen); err != nil {
				return err
			}
			if st := states[p]; st != nil {
				st.ids = append(st.ids, r)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("reading the identifiers of %d profiles: %w", len(chunk), err)
		}
		for p, st := range states {
			t.g.cacheState(p, st)
		}
	}
	return nil
}

func (t *Tx) scan(q string, args []any, row func(*sql.Rows) error) error {
	_, err := store.Query(t.ctx, t.tx, t.db.Rebind(q), args, func(rows *sql.Rows) (struct{}, error) { return struct{}{}, row(rows) })
	return err
}

func (g *Graph) remember(k idKey, p ProfileID) {
	if len(g.ids) >= g.opts.CachedIDs {
		n := 0
		for k := range g.ids { // map order: a cheap random eviction
			delete(g.ids, k)
			if n++; n >= g.opts.CachedIDs/8 {
				break
			}
		}
	}
	if _, ok := g.ids[k]; !ok {
		k = idKey{strings.Clone(k.coll), strings.Clone(k.typ), strings.Clone(k.value)}
	}
	g.ids[k] = p
}

func (g *Graph) cacheState(p ProfileID, st *profState) {
	if _, ok := g.profs[p]; !ok && len(g.profs) >= g.opts.CachedProfiles {
		n := 0
		for k := range g.profs {
			delete(g.profs, k)
			if n++; n >= max(1, g.opts.CachedProfiles/8) {
				break
			}
		}
	}
	g.profs[p] = st
}

// state returns what the limits need of profile p.
func (t *Tx) state(p ProfileID) (*profState, error) {
	if st, ok := t.g.profs[p]; ok {
		return st, nil
	}
	if err := t.PrefetchStates([]ProfileID{p}); err != nil {
		return nil, err
	}
	st, ok := t.g.profs[p]
	if !ok {
		return nil, fmt.Errorf("profile %s is not in the store", p)
	}
	return st, nil
}

// settle writes the identifiers gained so far before the store is asked:
// the cache may have evicted some, and the store must then know them.
func (t *Tx) settle() error {
	if err := t.g.newProfiles.Flush(t.ctx, t.tx); err != nil {
		return err
	}
	return t.g.newIDs.Flush(t.ctx, t.tx)
}

// Flush writes what the transaction buffered: the identifiers gained.
func (t *Tx) Flush() error { return t.settle() }
