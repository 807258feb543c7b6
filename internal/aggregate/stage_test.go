package aggregate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/aggregate/profile"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
)

// publish writes one processed message of n events of user u, numbered
// from first.
func publish(t *testing.T, l *stream.Log, u string, first, n int) {
	t.Helper()
	var data []byte
	// Now, not a fixed date: the history keeps events of the last 14 days.
	at := time.Now().UTC().Format(time.RFC3339)
	for i := first; i < first+n; i++ {
		data = event.AppendRecord(data, "web", fmt.Appendf(nil,
			`{"type":"track","event":"E","messageId":"m%d","userId":%q,"anonymousId":"a-%s-%d","timestamp":%q,"receivedAt":%q}`,
			i, u, u, i%3, at, at))
	}
	if _, err := l.JetStream().Publish(context.Background(), stream.ProcessedSubject, data); err != nil {
		t.Fatal(err)
	}
}

func runStage(t *testing.T, l *stream.Log, db *store.DB) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := New(Options{Log: l, DB: db, Rules: identity.DefaultRules, Logger: storetest.Logger(t), Linger: time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func waitPosition(t *testing.T, db *store.DB, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		pos, err := LoadPosition(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		if pos >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("position %d, want %d", pos, want)
		}
	}
}

func count(t *testing.T, db *store.DB, q string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStageAppliesOnceAcrossRestarts reads the processed log, stops,
// restarts and reads on: every event is in one history once.
func TestStageAppliesOnceAcrossRestarts(t *testing.T) {
	l := streamtest.New(t)
	db := storetest.SQLite(t)
	publish(t, l, "u1", 0, 50)
	publish(t, l, "u2", 50, 50)
	stop := runStage(t, l, db)
	waitPosition(t, db, 2)
	stop()
	publish(t, l, "u1", 100, 25)
	publish(t, l, "u3", 125, 25)
	stop = runStage(t, l, db)
	waitPosition(t, db, 4)
	stop()
	if n := count(t, db, `SELECT COUNT(*) FROM profile_events`); n != 150 {
		t.Errorf("%d history events, want 150", n)
	}
	if n := count(t, db, `SELECT COUNT(DISTINCT profile_id) FROM profile_events`); n != 3 {
		t.Errorf("history on %d profiles, want 3", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM profiles WHERE merged_into IS NULL`); n != 3 {
		t.Errorf("%d live profiles, want 3", n)
	}
}

// TestPrune deletes history past the retention and keeps the rest; a
// profile whose whole history went keeps its last event in its metadata.
func TestPrune(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, identity.Settings{})
		old := time.Now().Add(-20 * 24 * time.Hour).Format(time.RFC3339)
		recent := time.Now().Format(time.RFC3339)
		f.apply(f.rec("track", `"userId":"u-prune","event":"Old","receivedAt":"`+old+`"`),
			f.rec("track", `"userId":"u-prune","event":"New","receivedAt":"`+recent+`"`),
			f.rec("track", `"userId":"u-idle","event":"First","receivedAt":"`+old+`"`),
			f.rec("track", `"userId":"u-idle","event":"Last","receivedAt":"`+old+`"`))
		s := New(Options{DB: db, Rules: identity.DefaultRules, PruneEvery: 10 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		pruned := make(chan struct{})
		go func() { defer close(pruned); s.prune(ctx) }()
		// The pruner must have stopped writing before the store closes and
		// the test's directory is removed.
		defer func() { cancel(); <-pruned }()
		for deadline := time.Now().Add(5 * time.Second); count(t, db, `SELECT COUNT(*) FROM profile_events`) != 1; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d history events after pruning, want 1", count(t, db, `SELECT COUNT(*) FROM profile_events`))
			}
		}
		cancel()
		<-pruned
		meta, err := profile.NewReader(db).Metadata(context.Background(), f.profile("user_id:u-idle"))
		if err != nil {
			t.Fatal(err)
		}
		if meta.FirstMessageID != "m0003" || meta.LastMessageID != "m0004" {
			t.Errorf("idle profile after pruning: first %q last %q, want m0003 and m0004", meta.FirstMessageID, meta.LastMessageID)
		}
		if oldAt, _ := time.Parse(time.RFC3339, old); meta.UpdatedAt.Before(oldAt) {
			t.Errorf("idle profile after pruning: updated_at %v, before its last event's arrival %v", meta.UpdatedAt, oldAt)
		}
	})
}

// TestTwoNodesApplyOnce runs two stages on one PostgreSQL store and one
// log at the same time, as two nodes would: the position check makes
// every event land in a history once.
func TestTwoNodesApplyOnce(t *testing.T) {
	l := streamtest.New(t)
	url := storetest.PostgresSchema(t)
	var dbs []*store.DB
	for range 2 {
		db, err := store.Open(t.Context(), store.Options{PostgresURL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		dbs = append(dbs, db)
	}
	stopA, stopB := runStage(t, l, dbs[0]), runStage(t, l, dbs[1])
	for i := range 20 {
		publish(t, l, fmt.Sprintf("u%d", i%4), i*20, 20)
	}
	waitPosition(t, dbs[0], 20)
	stopA()
	stopB()
	if n := count(t, dbs[0], `SELECT COUNT(*) FROM profile_events`); n != 400 {
		t.Errorf("%d history events, want 400", n)
	}
	if n := count(t, dbs[0], `SELECT COUNT(*) FROM profiles WHERE merged_into IS NULL`); n != 4 {
		t.Errorf("%d live profiles, want 4", n)
	}
}

// TestNoHistory: with the history off, profiles still get identifiers and
// traits, and no event is kept.
func TestNoHistory(t *testing.T) {
	db := storetest.SQLite(t)
	f := newFixture(t, db, identity.Settings{})
	f.res.NoHistory = func() bool { return true }
	f.apply(f.rec("identify", `"anonymousId":"a-nh","userId":"u-nh","traits":{"plan":"pro"}`), f.rec("track", `"userId":"u-nh","event":"E"`))
	f.same("user_id:u-nh", "anonymous_id:a-nh")
	if n := count(t, db, `SELECT COUNT(*) FROM profile_events`); n != 0 {
		t.Errorf("%d history events with the history off", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM profile_traits`); n != 1 {
		t.Errorf("%d trait documents, want 1", n)
	}
}

// TestFailedBatchAppliesNothing: a batch that fails part way (here, a
// stored traits document that does not decode) leaves nothing behind, and
// once the cause is gone the same batch is applied once.
func TestFailedBatchAppliesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, identity.Settings{})
		f.apply(f.rec("identify", `"userId":"u-fail","traits":{"plan":"free"}`))
		p := f.profile("user_id:u-fail")
		if _, err := db.SQL().Exec(db.Rebind(`UPDATE profile_traits SET traits = 'not json' WHERE profile_id = ?`), p); err != nil {
			t.Fatal(err)
		}
		batch := []Record{f.rec("track", `"userId":"u-fail","event":"E"`), f.rec("identify", `"userId":"u-fail","traits":{"plan":"pro"}`),
			f.rec("group", `"userId":"u-fail","groupId":"g-fail"`)}
		if _, err := f.res.Apply(context.Background(), batch, nil); err == nil {
			t.Fatal("a batch over a broken traits document applied")
		}
		if _, err := db.SQL().Exec(db.Rebind(`UPDATE profile_traits SET traits = '{}' WHERE profile_id = ?`), p); err != nil {
			t.Fatal(err)
		}
		f.apply(batch...)
		if n := count(t, db, `SELECT COUNT(*) FROM profile_events`); n != 5 {
			t.Errorf("%d history events, want 5 (the first event, then the batch once: the group call is in the user's and the account's)", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM profile_links`); n != 1 {
			t.Errorf("%d links, want 1", n)
		}
	})
}
