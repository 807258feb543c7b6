// Package aggregate is the aggregation stage: it reads the processed log,
// resolves every event to a profile in the identity graph
// (internal/aggregate/identity), and keeps each profile's traits, event
// history and links (internal/aggregate/profile), all in the state store.
//
// # Exactly once
//
// The stage applies whole processed messages in one transaction of the
// state store, together with its position in the log (profile_positions).
// A crash at any point leaves the store either before or after a batch,
// never in between, and reading resumes after the stored position: every
// event is applied once.
//
// # One writer
//
// The graph is one per workspace, not split by partition: an event that
// ties an anonymous id routed to one partition to a user id routed to
// another must see both. The stage is its one writer on a node (SQLite
// serialises writers anyway), which also lets its caches answer the 90%
// of events that bring no new identifier without a query.
// docs/design/identity.md has the design.
package aggregate

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/aggregate/profile"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/store"
)

// Record is one processed event: its source and stored JSON.
type Record struct {
	Source string
	JSON   []byte
}

// Counts are what a batch did, for metrics and tests.
type Counts struct {
	Events     int // resolved to a profile
	Unresolved int // no identifier left once blocked values were removed
	Invalid    int // not decodable
	Created    int
	Merges     int
	Dropped    int // identifiers left out to keep a limit
	Capped     int
}

func (c *Counts) add(o Counts) {
	c.Events += o.Events
	c.Unresolved += o.Unresolved
	c.Invalid += o.Invalid
	c.Created += o.Created
	c.Merges += o.Merges
	c.Dropped += o.Dropped
	c.Capped += o.Capped
}

// Resolver applies events to the identity graph and the profiles.
type Resolver struct {
	db     *store.DB
	graph  *identity.Graph
	writer *profile.Writer
	logger *slog.Logger
	now    func() time.Time
	// NoHistory, when it returns true, keeps events out of the history.
	NoHistory func() bool
	// parsed is the current batch's events, reused.
	parsed []parsed
}

// NewResolver returns a resolver over db under the rules rules returns.
func NewResolver(db *store.DB, rules func() *identity.Rules, opts identity.Options, logger *slog.Logger) *Resolver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Resolver{db: db, graph: identity.NewGraph(db, rules, opts), writer: profile.NewWriter(db), logger: logger, now: time.Now}
}

// Apply applies recs in one transaction. claim, if set, runs in it
// first: the stage checks and moves its position there, so that a second
// node applying the same log at the same time fails instead of applying
// twice. On error nothing is applied.
func (r *Resolver) Apply(ctx context.Context, recs []Record, claim func(context.Context, *sql.Tx) error) (Counts, error) {
	var c Counts
	err := r.db.InTx(ctx, func(tx *sql.Tx) error {
		if claim != nil {
			if err := claim(ctx, tx); err != nil {
				return err
			}
		}
		c = Counts{}
		b := &batch{r: r, ctx: ctx, tx: tx, g: r.graph.Begin(ctx, tx), w: r.writer, now: r.now().UnixMilli(),
			history: r.NoHistory == nil || !r.NoHistory()}
		if err := b.prepare(recs, &c); err != nil {
			return err
		}
		for i := range r.parsed {
			o, err := b.apply(&r.parsed[i])
			if err != nil {
				return err
			}
			c.add(o)
		}
		if err := b.g.Flush(); err != nil {
			return err
		}
		return b.w.Flush(ctx, tx)
	})
	clear(r.parsed)
	r.parsed = r.parsed[:0]
	if err != nil {
		r.reset()
		return Counts{}, err
	}
	return c, nil
}

// reset drops the caches and buffers: after a failed transaction, or
// when another writer may have changed the store.
func (r *Resolver) reset() {
	r.graph.Reset()
	r.writer.Reset()
}

// parsed is one event decoded, with its identifiers.
type parsed struct {
	rec Record
	doc event.Doc
	ex  identity.Extracted
}

// batch is one transaction's work.
type batch struct {
	r   *Resolver
	ctx context.Context
	tx  *sql.Tx
	g   *identity.Tx
	w   *profile.Writer
	now int64
	// history: events go to the profiles' history.
	history bool
}

// prepare decodes recs and looks up, in a few queries, every identifier
// they carry and what the limits need of the profiles they will change.
func (b *batch) prepare(recs []Record, c *Counts) error {
	rules := b.g.Rules()
	var users, accounts []identity.ID
	for _, rec := range recs {
		doc, err := rules.Decode(rec.JSON)
		if err != nil {
			b.r.logger.Warn("processed event not decodable; not applied to profiles", "source", rec.Source, "err", err)
			c.Invalid++
			continue
		}
		p := parsed{rec: rec, doc: doc, ex: rules.Extract(doc)}
		users = append(users, p.ex.Users...)
		accounts = append(accounts, p.ex.Accounts...)
		if prev := p.ex.PreviousID; prev != "" {
			users = append(users, identity.ID{Type: identity.TypeUserID, Value: prev}, identity.ID{Type: identity.TypeAnonymousID, Value: prev})
		}
		b.r.parsed = append(b.r.parsed, p)
	}
	if err := b.g.Prefetch(identity.Users, users); err != nil {
		return err
	}
	if err := b.g.Prefetch(identity.Accounts, accounts); err != nil {
		return err
	}
	// The profiles an event may add identifiers to or merge: those of
	// events that bring an identifier not known yet, or several profiles.
	var changing []identity.ProfileID
	for i := range b.r.parsed {
		p := &b.r.parsed[i]
		changing = b.changing(changing, identity.Users, p.ex.Users, p.ex.PreviousID != "")
		changing = b.changing(changing, identity.Accounts, p.ex.Accounts, false)
	}
	return b.g.PrefetchStates(changing)
}

// changing appends to dst the profiles ids match when the event they come
// from may change them: it brings an identifier not known yet, matches
// several profiles, or is an alias.
func (b *batch) changing(dst []identity.ProfileID, coll string, ids []identity.ID, alias bool) []identity.ProfileID {
	n := len(dst)
	fresh := false
	for _, id := range ids {
		if prof, _ := b.g.Known(coll, id); prof == 0 {
			fresh = true
		} else if !slices.Contains(dst[n:], prof) {
			dst = append(dst, prof)
		}
	}
	if fresh || len(dst)-n > 1 || alias {
		return dst
	}
	return dst[:n]
}

// apply resolves one event and records it on its profiles.
func (b *batch) apply(p *parsed) (Counts, error) {
	var c Counts
	doc, ex, rec := p.doc, p.ex, p.rec
	if ex.PreviousID != "" {
		prev, err := b.g.AliasID(ex.PreviousID)
		if err != nil {
			return c, err
		}
		if !slices.Contains(ex.Users, prev) { // analytics.js aliases its own anonymousId
			ex.Users = append(slices.Clip(ex.Users), prev)
		}
	}
	if len(ex.Users) == 0 {
		c.Unresolved++
		return c, nil
	}
	msgID, _ := doc["messageId"].(string)
	ev := identity.Event{MessageID: msgID, SourceID: rec.Source, At: eventTime(doc, b.now), Now: b.now}
	received := timeField(doc, "receivedAt", ev.At)
	user, err := b.resolve(identity.Users, ex.Users, ev, &c)
	if err != nil {
		return c, err
	}
	if b.history {
		b.w.Event(user, ev.At, received, rec.Source, msgID, rec.JSON)
	}
	typ, _ := doc["type"].(string)
	traits, _ := doc["traits"].(map[string]any)
	src := profile.TraitSource{At: ev.At, MessageID: ev.MessageID, SourceID: ev.SourceID}
	if len(traits) > profile.MaxTraits {
		b.r.logger.Warn("identify or group with too many traits; traits not applied", "message_id", msgID, "traits", len(traits), "max", profile.MaxTraits)
		traits = nil
	}
	if typ == event.Identify {
		if err := b.w.Traits(user, traits, src); err != nil {
			return c, err
		}
	}
	if len(ex.Accounts) > 0 {
		account, err := b.resolve(identity.Accounts, ex.Accounts, ev, &c)
		if err != nil {
			return c, err
		}
		if typ == event.Group {
			if err := b.w.Traits(account, traits, src); err != nil {
				return c, err
			}
			if b.history {
				b.w.Event(account, ev.At, received, rec.Source, msgID, rec.JSON)
			}
		}
		b.w.Link(user, account, b.now)
	}
	c.Events++
	return c, nil
}

// resolve resolves ids in collection coll and moves the data of the
// profiles it merged.
func (b *batch) resolve(coll string, ids []identity.ID, ev identity.Event, c *Counts) (identity.ProfileID, error) {
	res, err := b.g.Resolve(coll, ids, ev)
	if err != nil {
		return 0, err
	}
	for _, m := range res.Merges {
		if err := b.w.Merge(b.ctx, b.tx, coll, m.Into, m.From); err != nil {
			return 0, err
		}
		b.r.logger.Debug("profiles merged", "into", m.Into, "from", m.From, "identifier", m.Cause, "message_id", ev.MessageID)
	}
	if res.Created {
		c.Created++
	}
	if res.Capped {
		c.Capped++
	}
	c.Merges += len(res.Merges)
	c.Dropped += len(res.Dropped)
	return res.Profile, nil
}

// eventTime is an event's timestamp in unix milliseconds: timestamp, else
// receivedAt, else now.
func eventTime(doc event.Doc, now int64) int64 {
	return timeField(doc, "timestamp", timeField(doc, "receivedAt", now))
}

func timeField(doc event.Doc, key string, def int64) int64 {
	s, _ := doc[key].(string)
	if s == "" {
		return def
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return def
	}
	return t.UnixMilli()
}

// String renders counts for logs.
func (c Counts) String() string {
	return fmt.Sprintf("%d events (%d unresolved, %d invalid), %d profiles created, %d merges, %d identifiers dropped, %d capped",
		c.Events, c.Unresolved, c.Invalid, c.Created, c.Merges, c.Dropped, c.Capped)
}
