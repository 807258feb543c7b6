package deliver

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// t0 is the tests' fixed clock, at millisecond precision as stored.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

// rawBytes holds bytes that only a BLOB or BYTEA keeps: a NUL, bytes that
// are not UTF-8, and a high byte at the end.
var rawBytes = []byte{'H', 'T', 'T', 'P', 0x00, 0xff, 0xfe, '\n', 0xc3, 0x28, 0x80}

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

// testJob is a job with every field set, due at next.
func testJob(id, messageID string, next time.Time) job {
	return job{ID: id, MessageID: messageID, SourceID: "src-web", Type: "track",
		Event:      fmt.Appendf(nil, `{"type":"track","event":"Signed Up","messageId":%q,"properties":{"note":"caf\u00e9"}}`, messageID),
		ReceivedAt: t0.Add(-time.Hour), Attempts: 1, FirstAttemptAt: t0.Add(-59 * time.Minute), NextAttemptAt: next,
		LastStatus: 503, LastReason: "http_503", LastError: "hooks.example.com answered 503 down", ReplayID: ""}
}

func testDead(dest, label, messageID, reason string, failed time.Time) *DeadLetter {
	return &DeadLetter{DestinationID: dest, MessageID: messageID, SourceID: label, EventType: "identify",
		Event:      fmt.Appendf(nil, `{"type":"identify","userId":"u-1","messageId":%q}`, messageID),
		ReceivedAt: failed.Add(-2 * time.Hour), Reason: reason, StatusCode: 400, ErrorReason: "http_400",
		Error: "hooks.example.com answered 400 bad", Request: append([]byte("POST /in\n\n"), rawBytes...),
		Response: append([]byte("400 Bad Request\n\n"), rawBytes...), Attempts: 3, FirstAttemptAt: failed.Add(-time.Hour),
		FailedAt: failed}
}

func withReplay(d *DeadLetter, id string) *DeadLetter {
	d.ReplayID = id
	return d
}

func mustApply(t *testing.T, s *jobStore, dest string, ops ...op) {
	t.Helper()
	if err := s.apply(t.Context(), dest, dest, ops, nil, t0); err != nil {
		t.Fatalf("apply to %s: %v", dest, err)
	}
}

func schedule(j job) op { return op{kind: opSchedule, job: j} }

// checkJob reports every field of got that differs from want.
func checkJob(t *testing.T, got, want job) {
	t.Helper()
	type field struct {
		name      string
		got, want any
		equal     bool
	}
	for _, f := range []field{
		{"ID", got.ID, want.ID, got.ID == want.ID},
		{"MessageID", got.MessageID, want.MessageID, got.MessageID == want.MessageID},
		{"SourceID", got.SourceID, want.SourceID, got.SourceID == want.SourceID},
		{"Type", got.Type, want.Type, got.Type == want.Type},
		{"Event", string(got.Event), string(want.Event), bytes.Equal(got.Event, want.Event)},
		{"ReceivedAt", got.ReceivedAt, want.ReceivedAt, got.ReceivedAt.Equal(want.ReceivedAt)},
		{"Attempts", got.Attempts, want.Attempts, got.Attempts == want.Attempts},
		{"FirstAttemptAt", got.FirstAttemptAt, want.FirstAttemptAt, got.FirstAttemptAt.Equal(want.FirstAttemptAt)},
		{"NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt, got.NextAttemptAt.Equal(want.NextAttemptAt)},
		{"LastStatus", got.LastStatus, want.LastStatus, got.LastStatus == want.LastStatus},
		{"LastReason", got.LastReason, want.LastReason, got.LastReason == want.LastReason},
		{"LastError", got.LastError, want.LastError, got.LastError == want.LastError},
		{"ReplayID", got.ReplayID, want.ReplayID, got.ReplayID == want.ReplayID},
	} {
		if !f.equal {
			t.Errorf("job %s: %s = %v, want %v", want.ID, f.name, f.got, f.want)
		}
	}
}

// checkDead reports every field of got that differs from want; want.ID 0
// accepts any id.
func checkDead(t *testing.T, got, want DeadLetter) {
	t.Helper()
	type field struct {
		name      string
		got, want any
		equal     bool
	}
	for _, f := range []field{
		{"ID", got.ID, want.ID, got.ID == want.ID || (want.ID == 0 && got.ID > 0)},
		{"DestinationID", got.DestinationID, want.DestinationID, got.DestinationID == want.DestinationID},
		{"MessageID", got.MessageID, want.MessageID, got.MessageID == want.MessageID},
		{"SourceID", got.SourceID, want.SourceID, got.SourceID == want.SourceID},
		{"EventType", got.EventType, want.EventType, got.EventType == want.EventType},
		{"Event", string(got.Event), string(want.Event), bytes.Equal(got.Event, want.Event)},
		{"ReceivedAt", got.ReceivedAt, want.ReceivedAt, got.ReceivedAt.Equal(want.ReceivedAt)},
		{"Reason", got.Reason, want.Reason, got.Reason == want.Reason},
		{"StatusCode", got.StatusCode, want.StatusCode, got.StatusCode == want.StatusCode},
		{"ErrorReason", got.ErrorReason, want.ErrorReason, got.ErrorReason == want.ErrorReason},
		{"Error", got.Error, want.Error, got.Error == want.Error},
		{"Request", fmt.Sprintf("%q", got.Request), fmt.Sprintf("%q", want.Request), bytes.Equal(got.Request, want.Request)},
		{"Response", fmt.Sprintf("%q", got.Response), fmt.Sprintf("%q", want.Response), bytes.Equal(got.Response, want.Response)},
		{"Attempts", got.Attempts, want.Attempts, got.Attempts == want.Attempts},
		{"FirstAttemptAt", got.FirstAttemptAt, want.FirstAttemptAt, got.FirstAttemptAt.Equal(want.FirstAttemptAt)},
		{"FailedAt", got.FailedAt, want.FailedAt, got.FailedAt.Equal(want.FailedAt)},
		{"ReplayID", got.ReplayID, want.ReplayID, got.ReplayID == want.ReplayID},
	} {
		if !f.equal {
			t.Errorf("dead letter %d (%s): %s = %v, want %v", got.ID, want.SourceID, f.name, f.got, f.want)
		}
	}
}

func jobIDs(jobs []job) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// allJobs returns every job of dest, due or not.
func allJobs(t *testing.T, s *jobStore, dest string) []job {
	t.Helper()
	jobs, err := s.due(t.Context(), dest, shard{0, 1}, t0.AddDate(100, 0, 0), 1000, 0, func(string) bool { return false })
	if err != nil {
		t.Fatalf("due: %v", err)
	}
	return jobs
}

func allDead(t *testing.T, s *jobStore) []DeadLetter {
	t.Helper()
	ds, err := s.deadLetters(t.Context(), deadFilter{}, 1000, false)
	if err != nil {
		t.Fatalf("deadLetters: %v", err)
	}
	return ds
}

func TestJobStorePosition(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		ctx := t.Context()
		if seq, done, ok, err := rawPosition(s, "d1"); err != nil || ok || seq != 0 || done != nil {
			t.Fatalf("position of a new destination: %d %q %v %v, want 0 nil false nil", seq, done, ok, err)
		}

		if err := s.initShards(ctx, "d1", 1, 41, t0); err != nil {
			t.Fatalf("initShards: %v", err)
		}
		if seq, done, ok, err := rawPosition(s, "d1"); err != nil || !ok || seq != 41 || len(done) != 0 {
			t.Fatalf("position after initShards(41): %d %q %v %v, want 41 empty true nil", seq, done, ok, err)
		}

		cases := []struct {
			name string
			pos  position
		}{
			{"done bytes", position{seq: 1<<40 + 7, done: rawBytes}},
			{"a lower seq replaces it too", position{seq: 42, done: []byte{0x00}}},
			{"no done bytes", position{seq: 43}},
			{"largest seq stored", position{seq: 1<<63 - 1, done: bytes.Repeat([]byte{0xff, 0x00}, 600)}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				pos := tc.pos
				if err := s.apply(ctx, "d1", "d1", nil, &pos, t0.Add(time.Second)); err != nil {
					t.Fatalf("apply: %v", err)
				}
				seq, done, ok, err := rawPosition(s, "d1")
				if err != nil || !ok {
					t.Fatalf("position: ok %v, err %v", ok, err)
				}
				if seq != tc.pos.seq || !bytes.Equal(done, tc.pos.done) {
					t.Errorf("position %d %q, want %d %q", seq, done, tc.pos.seq, tc.pos.done)
				}
			})
		}

		// Ops without a position leave it alone, and destinations are apart.
		mustApply(t, s, "d1", schedule(testJob("1.0", "m-1", t0)))
		if seq, _, _, _ := rawPosition(s, "d1"); seq != 1<<63-1 {
			t.Errorf("apply without a position moved it to %d", seq)
		}
		if _, _, ok, err := rawPosition(s, "d2"); ok || err != nil {
			t.Errorf("position of d2: ok %v err %v, want none", ok, err)
		}
	})
}

// rawPosition reads the stored row of a queue key as it is.
func rawPosition(s *jobStore, key string) (uint64, []byte, bool, error) {
	var seq int64
	var done []byte
	err := s.db.SQL().QueryRow(s.db.Rebind(`SELECT seq, done FROM delivery_positions WHERE destination_id = ?`), key).Scan(&seq, &done)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, false, nil
	}
	return uint64(seq), done, err == nil, err
}

func TestJobStoreSchedule(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		first := testJob("17.2", "m-1", at(5))
		mustApply(t, s, "d1", schedule(first))

		// Reading the same message again after a crash schedules it again:
		// the first job stands.
		again := testJob("17.2", "m-other", at(50))
		again.Attempts, again.LastStatus, again.LastReason, again.Event = 9, 500, "http_500", []byte(`{"changed":true}`)
		mustApply(t, s, "d1", schedule(again))

		jobs := allJobs(t, s, "d1")
		if len(jobs) != 1 {
			t.Fatalf("%d jobs after scheduling one twice, want 1: %v", len(jobs), jobIDs(jobs))
		}
		checkJob(t, jobs[0], first)
		if n, err := s.countJobs(t.Context(), "d1"); err != nil || n != 1 {
			t.Errorf("countJobs: %d %v, want 1", n, err)
		}

		// The same id on another destination is another job.
		other := testJob("17.2", "m-1", at(6))
		other.ReplayID = "rp-x"
		mustApply(t, s, "d2", schedule(other))
		if jobs := allJobs(t, s, "d2"); len(jobs) != 1 {
			t.Errorf("d2 has %d jobs, want 1", len(jobs))
		} else {
			checkJob(t, jobs[0], other)
		}
		if n, _ := s.countJobs(t.Context(), "d1"); n != 1 {
			t.Errorf("d1 has %d jobs, want 1", n)
		}
	})
}

func TestJobStoreDue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		// Inserted out of order, so that "oldest first" is the query's.
		for _, n := range []int{3, 1, 5, 2, 4, 10} {
			mustApply(t, s, "d1", schedule(testJob(fmt.Sprintf("j%d", n), fmt.Sprintf("m-%d", n), at(n))))
		}
		mustApply(t, s, "d2", schedule(testJob("other", "m-9", at(0))))

		none := map[string]bool{}
		cases := []struct {
			name    string
			now     time.Time
			limit   int
			skip    map[string]bool
			skipped int
			want    []string
		}{
			{name: "all due, oldest first", now: at(5), limit: 100, skip: none, want: []string{"j1", "j2", "j3", "j4", "j5"}},
			{name: "due exactly now", now: at(3), limit: 100, skip: none, want: []string{"j1", "j2", "j3"}},
			{name: "a millisecond before", now: at(3).Add(-time.Millisecond), limit: 100, skip: none, want: []string{"j1", "j2"}},
			{name: "none due", now: at(0), limit: 100, skip: none, want: nil},
			{name: "later ones too", now: at(60), limit: 100, skip: none, want: []string{"j1", "j2", "j3", "j4", "j5", "j10"}},
			{name: "limit", now: at(60), limit: 2, skip: none, want: []string{"j1", "j2"}},
			{name: "skips in-flight jobs", now: at(5), limit: 2, skip: map[string]bool{"j1": true, "j3": true}, skipped: 2,
				want: []string{"j2", "j4"}},
			{name: "the allowance reaches past the skipped", now: at(5), limit: 3, skip: map[string]bool{"j1": true, "j2": true}, skipped: 2,
				want: []string{"j3", "j4", "j5"}},
			{name: "without an allowance the skipped take room", now: at(5), limit: 3, skip: map[string]bool{"j1": true, "j2": true},
				skipped: 0, want: []string{"j3"}},
			{name: "a larger allowance does not raise the limit", now: at(5), limit: 2, skip: map[string]bool{"j1": true}, skipped: 3,
				want: []string{"j2", "j3"}},
			{name: "all skipped", now: at(2), limit: 5, skip: map[string]bool{"j1": true, "j2": true}, skipped: 2, want: nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				jobs, err := s.due(t.Context(), "d1", shard{0, 1}, tc.now, tc.limit, tc.skipped, func(id string) bool { return tc.skip[id] })
				if err != nil {
					t.Fatalf("due: %v", err)
				}
				if got := jobIDs(jobs); !slices.Equal(got, tc.want) {
					t.Errorf("due = %v, want %v", got, tc.want)
				}
			})
		}

		jobs, err := s.due(t.Context(), "d1", shard{0, 1}, at(1), 10, 0, func(string) bool { return false })
		if err != nil || len(jobs) != 1 {
			t.Fatalf("due at 1: %v %v, want j1", jobIDs(jobs), err)
		}
		checkJob(t, jobs[0], testJob("j1", "m-1", at(1)))
	})
}

func TestJobStoreRetryAndDone(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		a, b := testJob("5.0", "m-a", at(1)), testJob("5.1", "m-b", at(2))
		mustApply(t, s, "d1", schedule(a), schedule(b))

		retried := a
		retried.Attempts, retried.NextAttemptAt = 4, at(30)
		retried.LastStatus, retried.LastReason, retried.LastError = 0, ReasonTimeout, "context deadline exceeded"
		// opRetry writes only the retry fields: the others in the op are
		// not the row's business.
		upd := retried
		upd.MessageID, upd.Event, upd.FirstAttemptAt = "ignored", []byte("{}"), at(99)
		mustApply(t, s, "d1", op{kind: opRetry, job: upd})

		jobs := allJobs(t, s, "d1")
		if got := jobIDs(jobs); !slices.Equal(got, []string{"5.1", "5.0"}) {
			t.Fatalf("jobs %v, want [5.1 5.0] (5.0 now due later)", got)
		}
		checkJob(t, jobs[1], retried)
		checkJob(t, jobs[0], b)

		// Retrying or finishing a job of another destination does nothing here.
		mustApply(t, s, "d2", op{kind: opRetry, job: testJob("5.1", "m-b", at(77))}, op{kind: opDone, job: b})
		checkJob(t, allJobs(t, s, "d1")[0], b)

		mustApply(t, s, "d1", op{kind: opDone, job: retried})
		if got := jobIDs(allJobs(t, s, "d1")); !slices.Equal(got, []string{"5.1"}) {
			t.Errorf("jobs after opDone of 5.0: %v, want [5.1]", got)
		}
		// Done twice (a delete of a missing row) is not an error.
		mustApply(t, s, "d1", op{kind: opDone, job: retried}, op{kind: opDone, job: b})
		if n, err := s.countJobs(t.Context(), "d1"); err != nil || n != 0 {
			t.Errorf("countJobs: %d %v, want 0", n, err)
		}

		// One transaction: schedule, retry and done of the same job.
		c := testJob("6.0", "m-c", at(1))
		cr := c
		cr.Attempts, cr.NextAttemptAt = 2, at(3)
		mustApply(t, s, "d1", schedule(c), op{kind: opRetry, job: cr}, schedule(testJob("6.1", "m-d", at(1))), op{kind: opDone, job: c})
		if got := jobIDs(allJobs(t, s, "d1")); !slices.Equal(got, []string{"6.1"}) {
			t.Errorf("jobs after one transaction: %v, want [6.1]", got)
		}
	})
}

func TestJobStoreApplyIsOneTransaction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		if err := s.initShards(t.Context(), "d1", 1, 10, t0); err != nil {
			t.Fatal(err)
		}
		bad := testDead("d1", "bad", "m-2", "lost", t0) // violates the reason CHECK
		err := s.apply(t.Context(), "d1", "d1", []op{schedule(testJob("11.0", "m-1", at(1))), {kind: opDead, dead: bad}},
			&position{seq: 11, done: []byte{1}}, t0)
		if err == nil {
			t.Fatal("apply with a dead letter of reason \"lost\" succeeded, want the CHECK to refuse it")
		}
		if n, _ := s.countJobs(t.Context(), "d1"); n != 0 {
			t.Errorf("the failed transaction left %d jobs", n)
		}
		if seq, done, _, _ := rawPosition(s, "d1"); seq != 10 || len(done) != 0 {
			t.Errorf("the failed transaction moved the position to %d %q", seq, done)
		}
		if n, _ := s.countDead(t.Context(), deadFilter{}); n != 0 {
			t.Errorf("the failed transaction left %d dead letters", n)
		}
	})
}

func TestJobStoreDead(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		j := testJob("8.3", "m-j", at(1))
		mustApply(t, s, "d1", schedule(j), schedule(testJob("8.4", "m-k", at(2))))

		// A log event discarded at once has no job row.
		fresh := testDead("d1", "fresh", "m-f", DeadDiscarded, at(3))
		// An expired job: its row goes with it.
		expired := testDead("d1", "expired", "m-j", DeadExpired, at(4))
		expired.StatusCode, expired.ErrorReason, expired.ReplayID = 0, ReasonTimeout, "rp-1"
		// Nothing recorded: empty, not NULL.
		bare := testDead("d1", "bare", "m-b", DeadDiscarded, at(5))
		bare.Request, bare.Response = nil, nil
		mustApply(t, s, "d1",
			op{kind: opDead, job: job{ID: "9.0", MessageID: "m-f"}, dead: fresh},
			op{kind: opDead, job: j, dead: expired, fromJob: true},
			op{kind: opDead, job: job{ID: "9.1", MessageID: "m-b"}, dead: bare})

		if got := jobIDs(allJobs(t, s, "d1")); !slices.Equal(got, []string{"8.4"}) {
			t.Errorf("jobs %v, want [8.4]: the expired job deleted, the other kept", got)
		}
		ds := allDead(t, s)
		if len(ds) != 3 {
			t.Fatalf("%d dead letters, want 3", len(ds))
		}
		bare.Request, bare.Response = []byte{}, []byte{}
		for i, want := range []*DeadLetter{fresh, expired, bare} {
			checkDead(t, ds[i], *want)
		}
		if !(ds[0].ID < ds[1].ID && ds[1].ID < ds[2].ID) {
			t.Errorf("ids %d %d %d, want increasing", ds[0].ID, ds[1].ID, ds[2].ID)
		}
		if !bytes.HasSuffix(ds[0].Request, rawBytes) || !bytes.HasSuffix(ds[0].Response, rawBytes) {
			t.Errorf("request %q and response %q lost their rawBytes bytes", ds[0].Request, ds[0].Response)
		}
	})
}

func TestJobStoreDeadLetterFilters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		// Each dead letter's SourceID is its label.
		for _, d := range []*DeadLetter{
			testDead("d1", "a", "m1", DeadDiscarded, at(0)),
			testDead("d1", "b", "m2", DeadExpired, at(60)),
			testDead("d2", "c", "m1", DeadDiscarded, at(120)),
			testDead("d1", "d", "m3", DeadDiscarded, at(180)),
			testDead("d2", "e", "m4", DeadExpired, at(240)),
			withReplay(testDead("d1", "f", "m5", DeadDiscarded, at(300)), "rp-0"),
		} {
			mustApply(t, s, d.DestinationID, op{kind: opDead, job: job{ID: "x", MessageID: d.MessageID}, dead: d})
		}
		id := map[string]int64{}
		for _, d := range allDead(t, s) {
			id[d.SourceID] = d.ID
		}
		if len(id) != 6 {
			t.Fatalf("%d dead letters, want 6", len(id))
		}

		cases := []struct {
			name  string
			f     deadFilter
			limit int
			want  string // labels, in id order
		}{
			{name: "all", f: deadFilter{}, want: "abcdef"},
			{name: "destination", f: deadFilter{Destination: "d1"}, want: "abdf"},
			{name: "unknown destination", f: deadFilter{Destination: "d3"}, want: ""},
			{name: "reason expired", f: deadFilter{Reason: DeadExpired}, want: "be"},
			{name: "reason discarded", f: deadFilter{Reason: DeadDiscarded}, want: "acdf"},
			{name: "destination and reason", f: deadFilter{Destination: "d2", Reason: DeadDiscarded}, want: "c"},
			{name: "message id across destinations", f: deadFilter{MessageID: "m1"}, want: "ac"},
			{name: "message id and destination", f: deadFilter{MessageID: "m1", Destination: "d2"}, want: "c"},
			{name: "from is inclusive", f: deadFilter{From: at(60)}, want: "bcdef"},
			{name: "to is exclusive", f: deadFilter{To: at(180)}, want: "abc"},
			{name: "from and to", f: deadFilter{From: at(60), To: at(180)}, want: "bc"},
			{name: "from a millisecond after", f: deadFilter{From: at(60).Add(time.Millisecond), To: at(180).Add(time.Millisecond)}, want: "cd"},
			{name: "empty window", f: deadFilter{From: at(61), To: at(119)}, want: ""},
			{name: "replay", f: deadFilter{ReplayID: "rp-0"}, want: "f"},
			{name: "not of a replay", f: deadFilter{NotReplay: "rp-0"}, want: "abcde"},
			{name: "after id", f: deadFilter{AfterID: id["b"]}, want: "cdef"},
			{name: "after the last id", f: deadFilter{AfterID: id["f"]}, want: ""},
			{name: "limit", f: deadFilter{}, limit: 2, want: "ab"},
			{name: "after id and limit: a page", f: deadFilter{AfterID: id["b"]}, limit: 2, want: "cd"},
			{name: "everything at once", f: deadFilter{Destination: "d1", Reason: DeadDiscarded, From: at(0), To: at(301), AfterID: id["a"]},
				limit: 1, want: "d"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				limit := tc.limit
				if limit == 0 {
					limit = 100
				}
				ds, err := s.deadLetters(t.Context(), tc.f, limit, false)
				if err != nil {
					t.Fatalf("deadLetters: %v", err)
				}
				var got string
				for _, d := range ds {
					got += d.SourceID
				}
				if got != tc.want {
					t.Errorf("deadLetters = %q, want %q", got, tc.want)
				}
				n, err := s.countDead(t.Context(), tc.f)
				if err != nil {
					t.Fatalf("countDead: %v", err)
				}
				if tc.limit == 0 && n != int64(len(tc.want)) {
					t.Errorf("countDead = %d, want %d", n, len(tc.want))
				}
				if tc.limit > 0 && n < int64(len(tc.want)) {
					t.Errorf("countDead = %d, less than a page of %d", n, len(tc.want))
				}
			})
		}
		if n, _ := s.countDead(t.Context(), deadFilter{}); n != 6 {
			t.Errorf("countDead of everything = %d, want 6 (limit ignored)", n)
		}
	})
}

func TestJobStoreRequeue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		ctx := t.Context()
		for i, d := range []*DeadLetter{
			testDead("d1", "a", "m-a", DeadDiscarded, at(0)),
			testDead("d1", "b", "m-b", DeadDiscarded, at(1)),
			testDead("d2", "c", "m-c", DeadDiscarded, at(2)),
			testDead("d1", "d", "m-d", DeadExpired, at(3)),
			testDead("d1", "e", "m-e", DeadDiscarded, at(4)),
			testDead("d1", "f", "m-f", DeadDiscarded, at(5)),
		} {
			mustApply(t, s, d.DestinationID, op{kind: opDead, job: job{ID: fmt.Sprint(i), MessageID: d.MessageID}, dead: d})
		}
		before := map[string]DeadLetter{}
		for _, d := range allDead(t, s) {
			before[d.SourceID] = d
		}

		if _, ok, err := s.replay(ctx, "rp-1"); ok || err != nil {
			t.Fatalf("replay of an unknown id: ok %v err %v, want false nil", ok, err)
		}

		// d1's discarded dead letters (a, b, e, f), two at a time.
		f := deadFilter{Destination: "d1", Reason: DeadDiscarded}
		now1, now2, now3 := at(100), at(101), at(102)
		for _, step := range []struct {
			now  time.Time
			want int
		}{{now1, 2}, {now2, 2}, {now3, 0}} {
			n, err := s.requeue(ctx, f, "rp-1", 2, step.now)
			if err != nil {
				t.Fatalf("requeue at %v: %v", step.now, err)
			}
			if n != step.want {
				t.Errorf("requeue at %v moved %d, want %d", step.now, n, step.want)
			}
		}

		jobs := allJobs(t, s, "d1")
		var wantIDs []string
		for _, l := range []string{"a", "b", "e", "f"} {
			wantIDs = append(wantIDs, fmt.Sprintf("r%d", before[l].ID))
		}
		if got := jobIDs(jobs); !slices.Equal(got, wantIDs) {
			t.Fatalf("d1 jobs %v, want %v", got, wantIDs)
		}
		for i, l := range []string{"a", "b", "e", "f"} {
			d := before[l]
			now := now1
			if i >= 2 {
				now = now2
			}
			checkJob(t, jobs[i], job{ID: wantIDs[i], MessageID: d.MessageID, SourceID: d.SourceID, Type: d.EventType,
				Event: d.Event, ReceivedAt: d.ReceivedAt, Attempts: 0, FirstAttemptAt: now, NextAttemptAt: now,
				LastStatus: d.StatusCode, LastReason: d.ErrorReason, LastError: d.Error, ReplayID: "rp-1"})
		}
		// Due at the replay's time, not before.
		if early, _ := s.due(ctx, "d1", shard{0, 1}, now1.Add(-time.Millisecond), 10, 0, func(string) bool { return false }); len(early) != 0 {
			t.Errorf("replayed jobs due before the replay: %v", jobIDs(early))
		}
		if due, _ := s.due(ctx, "d1", shard{0, 1}, now1, 10, 0, func(string) bool { return false }); len(due) != 2 {
			t.Errorf("%d jobs due at the first requeue, want 2", len(due))
		}
		var left string
		for _, d := range allDead(t, s) {
			left += d.SourceID
		}
		if left != "cd" {
			t.Errorf("dead letters left %q, want \"cd\"", left)
		}

		st, ok, err := s.replay(ctx, "rp-1")
		if err != nil || !ok {
			t.Fatalf("replay rp-1: ok %v err %v", ok, err)
		}
		checkReplay(t, st, ReplayStatus{ID: "rp-1", Moved: 4, Pending: 4, CreatedAt: now1, UpdatedAt: now3})

		// One is delivered, one fails again, one is retried.
		mustApply(t, s, "d1",
			op{kind: opDone, job: jobs[0]},
			op{kind: opDead, job: jobs[1], fromJob: true, dead: &DeadLetter{DestinationID: "d1", MessageID: jobs[1].MessageID,
				SourceID: jobs[1].SourceID, EventType: jobs[1].Type, Event: jobs[1].Event, ReceivedAt: jobs[1].ReceivedAt,
				Reason: DeadDiscarded, StatusCode: 422, ErrorReason: "http_422", Attempts: 1, FirstAttemptAt: now1,
				FailedAt: at(110), ReplayID: jobs[1].ReplayID}},
			op{kind: opRetry, job: func() job { j := jobs[2]; j.Attempts, j.NextAttemptAt = 1, at(120); return j }()})
		st, _, err = s.replay(ctx, "rp-1")
		if err != nil {
			t.Fatal(err)
		}
		checkReplay(t, st, ReplayStatus{ID: "rp-1", Moved: 4, Pending: 2, Failed: 1, Delivered: 1, CreatedAt: now1, UpdatedAt: now3})

		// The same replay again does not take its own failures.
		n, err := s.requeue(ctx, deadFilter{Destination: "d1"}, "rp-1", 100, at(130))
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 { // d, the expired one; not b, which failed in rp-1
			t.Errorf("requeue of rp-1 again moved %d, want 1 (d only)", n)
		}
		if ds, _ := s.deadLetters(ctx, deadFilter{ReplayID: "rp-1"}, 10, false); len(ds) != 1 || ds[0].SourceID != "b" {
			t.Errorf("rp-1's failure was taken again: %v", ds)
		}
		st, _, _ = s.replay(ctx, "rp-1")
		checkReplay(t, st, ReplayStatus{ID: "rp-1", Moved: 5, Pending: 3, Failed: 1, Delivered: 1, CreatedAt: now1, UpdatedAt: at(130)})

		// Without a destination, a replay takes every destination's, each
		// to its own queue.
		n, err = s.requeue(ctx, deadFilter{Reason: DeadDiscarded}, "rp-2", 100, at(140))
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 { // b (of rp-1) and c (on d2)
			t.Errorf("rp-2 moved %d, want 2", n)
		}
		if d2 := allJobs(t, s, "d2"); len(d2) != 1 || d2[0].ID != fmt.Sprintf("r%d", before["c"].ID) || d2[0].ReplayID != "rp-2" {
			t.Errorf("d2 jobs %v, want [r%d] of rp-2", jobIDs(d2), before["c"].ID)
		}
		if n, _ := s.countDead(ctx, deadFilter{}); n != 0 {
			t.Errorf("%d dead letters left, want 0", n)
		}
		st, _, _ = s.replay(ctx, "rp-2")
		checkReplay(t, st, ReplayStatus{ID: "rp-2", Moved: 2, Pending: 2, CreatedAt: at(140), UpdatedAt: at(140)})

		// A replay that matches nothing is recorded with nothing moved.
		if n, err := s.requeue(ctx, deadFilter{Destination: "d9"}, "rp-3", 100, at(150)); err != nil || n != 0 {
			t.Errorf("requeue of nothing: %d %v", n, err)
		}
		st, ok, _ = s.replay(ctx, "rp-3")
		if !ok {
			t.Errorf("replay rp-3 not recorded")
		}
		checkReplay(t, st, ReplayStatus{ID: "rp-3", CreatedAt: at(150), UpdatedAt: at(150)})
	})
}

func checkReplay(t *testing.T, got, want ReplayStatus) {
	t.Helper()
	if got.ID != want.ID || got.Moved != want.Moved || got.Pending != want.Pending || got.Failed != want.Failed ||
		got.Delivered != want.Delivered || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("replay %s: moved %d pending %d failed %d delivered %d created %v updated %v,\n"+
			"want moved %d pending %d failed %d delivered %d created %v updated %v", got.ID,
			got.Moved, got.Pending, got.Failed, got.Delivered, got.CreatedAt, got.UpdatedAt,
			want.Moved, want.Pending, want.Failed, want.Delivered, want.CreatedAt, want.UpdatedAt)
	}
}

func TestJobStoreJobsOf(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		mustApply(t, s, "d2", schedule(testJob("1.0", "m-1", at(1))))
		mustApply(t, s, "d1", schedule(testJob("1.0", "m-1", at(2))), schedule(testJob("2.0", "m-2", at(3))))
		mustApply(t, s, "d3", schedule(testJob("1.0", "m-1", at(4))))

		cases := []struct {
			name, dest, msg string
			limit           int
			want            []string // "<dest>/<job id>"
		}{
			{name: "message across destinations", msg: "m-1", limit: 10, want: []string{"d2/1.0", "d1/1.0", "d3/1.0"}},
			{name: "message on one destination", dest: "d1", msg: "m-1", limit: 10, want: []string{"d1/1.0"}},
			{name: "limit", msg: "m-1", limit: 2, want: []string{"d2/1.0", "d1/1.0"}},
			{name: "other message", msg: "m-2", limit: 10, want: []string{"d1/2.0"}},
			{name: "unknown message", msg: "m-9", limit: 10, want: nil},
			{name: "message not on that destination", dest: "d2", msg: "m-2", limit: 10, want: nil},
			{name: "a destination's jobs", dest: "d1", limit: 10, want: []string{"d1/1.0", "d1/2.0"}},
			{name: "everything", limit: 10, want: []string{"d2/1.0", "d1/1.0", "d1/2.0", "d3/1.0"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				dests, jobs, err := s.jobsOf(t.Context(), tc.dest, tc.msg, tc.limit)
				if err != nil {
					t.Fatalf("jobsOf: %v", err)
				}
				if len(dests) != len(jobs) {
					t.Fatalf("%d destinations for %d jobs", len(dests), len(jobs))
				}
				var got []string
				for i := range jobs {
					got = append(got, dests[i]+"/"+jobs[i].ID)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("jobsOf(%q, %q) = %v, want %v", tc.dest, tc.msg, got, tc.want)
				}
			})
		}
		_, jobs, err := s.jobsOf(t.Context(), "d1", "m-2", 10)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("jobsOf d1 m-2: %v %v", jobIDs(jobs), err)
		}
		checkJob(t, jobs[0], testJob("2.0", "m-2", at(3)))
	})
}

// TestReplayStatusAfterALaterReplay replays a dead letter, lets it fail
// again, and replays it once more under another id. The first replay did
// not deliver it, so its status must not say so: the event is handed
// over to the later replay.
func TestReplayStatusAfterALaterReplay(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := &jobStore{db: db}
		ctx := t.Context()
		mustApply(t, s, "d1", op{kind: opDead, job: job{ID: "1.0", MessageID: "m-1"}, dead: testDead("d1", "a", "m-1", DeadDiscarded, at(0))})
		if n, err := s.requeue(ctx, deadFilter{Destination: "d1"}, "rp-1", 100, at(10)); err != nil || n != 1 {
			t.Fatalf("requeue rp-1: %d %v, want 1", n, err)
		}
		j := allJobs(t, s, "d1")[0]
		again := testDead("d1", "a", "m-1", DeadDiscarded, at(11))
		again.ReplayID = j.ReplayID
		mustApply(t, s, "d1", op{kind: opDead, job: j, fromJob: true, dead: again})
		st, _, err := s.replay(ctx, "rp-1")
		if err != nil {
			t.Fatal(err)
		}
		checkReplay(t, st, ReplayStatus{ID: "rp-1", Moved: 1, Failed: 1, CreatedAt: at(10), UpdatedAt: at(10)})

		if n, err := s.requeue(ctx, deadFilter{Destination: "d1"}, "rp-2", 100, at(20)); err != nil || n != 1 {
			t.Fatalf("requeue rp-2: %d %v, want 1", n, err)
		}
		st, _, err = s.replay(ctx, "rp-1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Delivered != 0 || st.HandedOver != 1 {
			t.Errorf("replay rp-1 reports %d delivered after rp-2 took its one failure (moved %d pending %d failed %d); "+
				"the event was never delivered", st.Delivered, st.Moved, st.Pending, st.Failed)
		}
	})
}
