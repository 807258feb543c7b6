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
	logger *slog.Logger
	now    func() time.Time
	want   func(string) bool
}

// NewResolver returns a resolver over db under the rules rules returns.
func NewResolver(db *store.DB, rules func() *identity.Rules, opts identity.Options, logger *slog.Logger) *Resolver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fields := append(slices.Clone(identity.ExtractFields), "timestamp", "messageId", "receivedAt")
	return &Resolver{
		db: db, graph: identity.NewGraph(db, rules, opts), logger: logger, now: time.Now,
		want: func(k string) bool { return slices.Contains(fields, k) },
	}
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
		b := &batch{r: r, ctx: ctx, g: r.graph.Begin(ctx, tx), w: profile.NewWriter(ctx, r.db, tx),
			touched: map[identity.ProfileID]*identity.Touch{}, now: r.now().UnixMilli()}
		defer b.w.Close()
		for _, rec := range recs {
			o, err := b.apply(rec)
			if err != nil {
				return err
			}
			c.add(o)
		}
		return b.flush()
	})
	if err != nil {
		r.graph.Reset()
		return Counts{}, err
	}
	return c, nil
}

// batch is one transaction's work.
type batch struct {
	r       *Resolver
	ctx     context.Context
	g       *identity.Tx
	w       *profile.Writer
	touched map[identity.ProfileID]*identity.Touch
	now     int64
}

// apply resolves one event and records it on its profiles.
func (b *batch) apply(rec Record) (Counts, error) {
	var c Counts
	doc, _, err := event.DecodeSelected(rec.JSON, b.r.want)
	if err != nil {
		b.r.logger.Warn("processed event not decodable; not applied to profiles", "source", rec.Source, "err", err)
		c.Invalid++
		return c, nil
	}
	ex := b.g.Rules().Extract(doc)
	if ex.PreviousID != "" {
		prev, err := b.g.AliasID(ex.PreviousID)
		if err != nil {
			return c, err
		}
		ex.Users = append(ex.Users, prev)
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
	if err := b.w.Event(user, ev.At, received, rec.JSON); err != nil {
		return c, err
	}
	b.touch(user, ev)
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
			if err := b.w.Event(account, ev.At, received, rec.JSON); err != nil {
				return c, err
			}
		}
		b.touch(account, ev)
		if err := b.w.Link(user, account, b.now); err != nil {
			return c, err
		}
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
		if err := b.w.Merge(coll, m.Into, m.From); err != nil {
			return 0, err
		}
		if t, ok := b.touched[m.From]; ok {
			// The batch's touches of the merged profile are the survivor's now.
			delete(b.touched, m.From)
			t.Profile = m.Into
			b.merge(t)
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

// touch notes that ev happened to profile p, for its metadata.
func (b *batch) touch(p identity.ProfileID, ev identity.Event) {
	b.merge(&identity.Touch{Profile: p, FirstAt: ev.At, FirstMessageID: ev.MessageID, FirstSourceID: ev.SourceID,
		LastAt: ev.At, LastMessageID: ev.MessageID, LastSourceID: ev.SourceID, Now: ev.Now})
}

func (b *batch) merge(t *identity.Touch) {
	have, ok := b.touched[t.Profile]
	if !ok {
		b.touched[t.Profile] = t
		return
	}
	if t.FirstAt < have.FirstAt {
		have.FirstAt, have.FirstMessageID, have.FirstSourceID = t.FirstAt, t.FirstMessageID, t.FirstSourceID
	}
	if t.LastAt >= have.LastAt {
		have.LastAt, have.LastMessageID, have.LastSourceID = t.LastAt, t.LastMessageID, t.LastSourceID
	}
	have.Now = max(have.Now, t.Now)
}

// flush writes the metadata of the profiles the batch touched.
func (b *batch) flush() error {
	for _, t := range b.touched {
		if err := b.g.Touch(*t); err != nil {
			return err
		}
	}
	return nil
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
