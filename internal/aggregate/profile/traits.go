package profile

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/store"
)

// A profile's traits are one JSON document (profile_traits.traits), each
// key with the event that set it:
//
//	{"plan": {"v": "pro", "t": 1764583200000, "m": "<messageId>", "s": "<source>"}}
//
// One row per profile makes an identify one read and one write however
// many traits it sets, and the traits endpoint one read.
type storedTrait struct {
	V json.RawMessage `json:"v"`
	T int64           `json:"t"`
	M string          `json:"m"`
	S string          `json:"s"`
}

// traitDoc is a profile's traits by key.
type traitDoc map[string]storedTrait

// newer reports whether a was set by a later event than b (ties: the
// greater message id), the rule that makes traits independent of the
// order events arrive in.
func (a storedTrait) newer(b storedTrait) bool {
	return a.T > b.T || (a.T == b.T && a.M > b.M)
}

// fold adds src's traits to d, each key keeping the newer value.
func (d traitDoc) fold(src traitDoc) {
	for k, t := range src {
		if have, ok := d[k]; !ok || t.newer(have) {
			d[k] = t
		}
	}
}

func decodeTraits(p identity.ProfileID, s string) (traitDoc, error) {
	var d traitDoc
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("reading the traits of profile %s: %w", p, err)
	}
	return d, nil
}

// Traits sets profile p's traits from one event. They are merged with
// the stored ones at Flush.
func (w *Writer) Traits(p identity.ProfileID, traits map[string]any, src TraitSource) error {
	if len(traits) == 0 {
		return nil
	}
	d := w.traits[p]
	if d == nil {
		d = traitDoc{}
		w.traits[p] = d
	}
	for k, v := range traits {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding trait %q of profile %s: %w", k, p, err)
		}
		d.fold(traitDoc{strings.Clone(k): {V: b, T: src.At, M: src.MessageID, S: src.SourceID}})
	}
	return nil
}

// mergeTraits moves profile from's traits, stored and buffered, to into.
func (w *Writer) mergeTraits(ctx context.Context, tx *sql.Tx, into, from identity.ProfileID) error {
	moved := w.traits[from]
	delete(w.traits, from)
	var s string
	err := tx.QueryRowContext(ctx, w.db.Rebind(`SELECT traits FROM profile_traits WHERE profile_id = ?`), from).Scan(&s)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading the traits of profile %s to merge them: %w", from, err)
	}
	if err == nil {
		stored, err := decodeTraits(from, s)
		if err != nil {
			return err
		}
		if moved == nil {
			moved = stored
		} else {
			moved.fold(stored)
		}
		if _, err := tx.ExecContext(ctx, w.db.Rebind(`DELETE FROM profile_traits WHERE profile_id = ?`), from); err != nil {
			return fmt.Errorf("merging the traits of profile %s: %w", from, err)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	if d := w.traits[into]; d != nil {
		d.fold(moved)
	} else {
		w.traits[into] = moved
	}
	return nil
}

// flushTraits merges the buffered traits with the stored documents and
// writes them back.
func (w *Writer) flushTraits(ctx context.Context, tx *sql.Tx) error {
	ids := slices.Collect(maps.Keys(w.traits))
	for len(ids) > 0 {
		chunk := ids[:min(500, len(ids))]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, p := range chunk {
			args[i] = p
		}
		_, err := store.Query(ctx, tx, w.db.Rebind(`SELECT profile_id, traits FROM profile_traits WHERE profile_id IN (`+store.Placeholders(len(chunk))+`)`), args,
			func(rows *sql.Rows) (struct{}, error) {
				var p identity.ProfileID
				var s string
				if err := rows.Scan(&p, &s); err != nil {
					return struct{}{}, err
				}
				stored, err := decodeTraits(p, s)
				if err != nil {
					return struct{}{}, err
				}
				stored.fold(w.traits[p])
				w.traits[p] = stored
				return struct{}{}, nil
			})
		if err != nil {
			return fmt.Errorf("reading the traits of %d profiles: %w", len(chunk), err)
		}
	}
	for p, d := range w.traits {
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("encoding the traits of profile %s: %w", p, err)
		}
		w.traitBulk.Add(p, string(b))
	}
	clear(w.traits)
	return w.traitBulk.Flush(ctx, tx)
}

// Trait is one trait with where its value came from.
type Trait struct {
	Key       string          `json:"-"`
	Value     json.RawMessage `json:"value"`
	SourceID  string          `json:"source_id"`
	MessageID string          `json:"message_id"`
	Timestamp time.Time       `json:"timestamp"`
}

// Traits returns up to limit of p's traits with keys after after, in key
// order, only those named in include when it is not empty; more says
// whether others follow.
func (r *Reader) Traits(ctx context.Context, p identity.ProfileID, include []string, after string, limit int) (traits []Trait, more bool, err error) {
	var s string
	err = r.db.SQL().QueryRowContext(ctx, r.db.Rebind(`SELECT traits FROM profile_traits WHERE profile_id = ?`), p).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading traits of profile %s: %w", p, err)
	}
	d, err := decodeTraits(p, s)
	if err != nil {
		return nil, false, err
	}
	for _, k := range slices.Sorted(maps.Keys(d)) {
		if k <= after || (len(include) > 0 && !slices.Contains(include, k)) {
			continue
		}
		if len(traits) == limit {
			return traits, true, nil
		}
		t := d[k]
		traits = append(traits, Trait{Key: k, Value: t.V, SourceID: t.S, MessageID: t.M, Timestamp: time.UnixMilli(t.T).UTC()})
	}
	return traits, false, nil
}
