package identity

import (
	"fmt"
	"slices"
	"strings"
)

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
	ids = unique(ids)
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
		if len(profiles) == 1 && len(fresh) == 0 {
			res.Profile = profiles[0] // the common case: nothing new
			return res, nil
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
// It is written at Flush. The id is the writer's (the highest plus one):
// on PostgreSQL the column's sequence is not used, and nothing else may
// insert profiles through it.
func (t *Tx) create(coll string, ev Event) (ProfileID, error) {
	if t.next == 0 {
		if err := t.tx.QueryRowContext(t.ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM profiles`).Scan(&t.next); err != nil {
			return 0, fmt.Errorf("reading the highest profile id: %w", err)
		}
	}
	p := t.next
	t.next++
	t.g.newProfiles.Add(p, coll, ev.Now, ev.Now, ev.At, ev.MessageID, ev.SourceID, ev.At, ev.MessageID, ev.SourceID)
	t.g.cacheState(p, &profState{})
	return p, nil
}

// add gives profile p the identifiers ids. They are written at Flush; the
// cache knows them at once.
func (t *Tx) add(coll string, p ProfileID, ids []ID, ev Event, res *Resolution) error {
	if len(ids) == 0 {
		return nil
	}
	st, err := t.state(p)
	if err != nil {
		return err
	}
	for _, id := range ids {
		t.g.newIDs.Add(coll, id.Type, id.Value, p, ev.SourceID, ev.At, ev.Now)
		// Cloned: the event's strings share the log message's memory.
		st.ids = append(st.ids, idRow{ID: ID{strings.Clone(id.Type), strings.Clone(id.Value)}, firstSeen: ev.At})
		t.g.remember(keyOf(coll, id), p)
		res.Added = append(res.Added, id)
	}
	return nil
}

// merge moves profile from's identifiers into into and records it; the
// caller moves what else belongs to a profile (traits, events, links).
func (t *Tx) merge(coll string, into ProfileID, ist *profState, from ProfileID, fst *profState, cause ID, ev Event) error {
	// The identifiers gained so far must be in the store for it to move them.
	if err := t.settle(); err != nil {
		return err
	}
	stmts := []struct {
		q    string
		args []any
	}{
		{`UPDATE profile_ids SET profile_id = ? WHERE profile_id = ?`, []any{into, from}},
		{`UPDATE profiles SET merged_into = ? WHERE merged_into = ?`, []any{into, from}},
		{`UPDATE profiles SET merged_into = ?, updated_at = ? WHERE id = ?`, []any{into, ev.Now, from}},
		// The survivor takes the earlier first and the later last event.
		{`UPDATE profiles SET merges = merges + ?, updated_at = ?,
	first_message_id = CASE WHEN f.first_at < profiles.first_at THEN f.first_message_id ELSE profiles.first_message_id END,
	first_source_id = CASE WHEN f.first_at < profiles.first_at THEN f.first_source_id ELSE profiles.first_source_id END,
	first_at = CASE WHEN f.first_at < profiles.first_at THEN f.first_at ELSE profiles.first_at END,
	last_message_id = CASE WHEN f.last_at > profiles.last_at THEN f.last_message_id ELSE profiles.last_message_id END,
	last_source_id = CASE WHEN f.last_at > profiles.last_at THEN f.last_source_id ELSE profiles.last_source_id END,
	last_at = CASE WHEN f.last_at > profiles.last_at THEN f.last_at ELSE profiles.last_at END
	FROM (SELECT first_at, first_message_id, first_source_id, last_at, last_message_id, last_source_id FROM profiles WHERE id = ?) AS f
	WHERE profiles.id = ?`, []any{fst.merges + 1, ev.Now, from, into}},
		{`INSERT INTO profile_merges (collection, into_id, from_id, message_id, source_id, id_type, id_value, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			[]any{coll, into, from, ev.MessageID, ev.SourceID, cause.Type, cause.Value, ev.Now}},
	}
	for _, s := range stmts {
		if _, err := t.tx.ExecContext(t.ctx, t.db.Rebind(s.q), s.args...); err != nil {
			return fmt.Errorf("merging profile %s into %s: %w", from, into, err)
		}
	}
	for _, r := range fst.ids {
		t.g.remember(keyOf(coll, r.ID), into)
	}
	ist.ids = append(ist.ids, fst.ids...)
	ist.merges += fst.merges + 1
	delete(t.g.profs, from)
	return nil
}

// unique returns a copy of ids without repeats, in order.
func unique(ids []ID) []ID {
	out := make([]ID, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
