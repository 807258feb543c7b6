package deliver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/confluxcdp/conflux/internal/store"
)

// job is an event awaiting retry for one destination: a row of
// delivery_jobs.
type job struct {
	// ID is "<processed seq>.<record index>" for an event read from the
	// log, "r<dead letter id>" for a replayed one.
	ID             string
	MessageID      string
	SourceID       string
	Type           string
	Event          []byte
	ReceivedAt     time.Time
	Attempts       int
	FirstAttemptAt time.Time
	NextAttemptAt  time.Time
	LastStatus     int
	LastReason     string
	LastError      string
	// LastRequest and LastResponse are written, not read with the job:
	// they go into the dead letter if the job expires before it is tried
	// again.
	LastRequest, LastResponse []byte
	ReplayID                  string
	// Shard, modulo the destination's shard count, is the shard whose
	// queue retries the job: the one that wrote it, or any for a replay.
	Shard int
}

// DeadLetter is a discarded or expired event, with its last attempt.
type DeadLetter struct {
	ID            int64     `json:"id"`
	DestinationID string    `json:"destination_id"`
	MessageID     string    `json:"message_id"`
	SourceID      string    `json:"source_id"`
	EventType     string    `json:"event_type"`
	Event         []byte    `json:"-"`
	ReceivedAt    time.Time `json:"received_at"`
	// Reason is "discarded" or "expired".
	Reason string `json:"reason"`
	// StatusCode is the destination's last HTTP status (0: none).
	StatusCode int `json:"status_code"`
	// ErrorReason is the last attempt's machine reason, e.g. "http_400".
	ErrorReason    string    `json:"error_reason"`
	Error          string    `json:"error"`
	Request        []byte    `json:"-"`
	Response       []byte    `json:"-"`
	Attempts       int       `json:"attempts"`
	FirstAttemptAt time.Time `json:"first_attempt_at"`
	FailedAt       time.Time `json:"failed_at"`
	ReplayID       string    `json:"replay_id,omitempty"`
}

// Dead-letter reasons.
const (
	DeadDiscarded = "discarded"
	DeadExpired   = "expired"
)

// opKind is what a state write does.
type opKind uint8

const (
	opSchedule opKind = iota + 1 // a log event's first failure: insert its job
	opRetry                      // a job failed again: update it
	opDone                       // a job was delivered: delete it
	opDead                       // dead-letter the event (and delete its job)
)

// op is one write to the delivery state, made by a queue's writer.
type op struct {
	kind opKind
	job  job
	dead *DeadLetter
	// fromJob: the event came from delivery_jobs (so it has a row).
	fromJob bool
}

// jobStore reads and writes the delivery tables of the state store.
type jobStore struct {
	db *store.DB
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// positions returns every stored position of a destination's queue: one
// per shard, of the shard count it runs with and, after a change of
// shard count, of the one before (see [inherited]). A row whose finished
// records are unreadable counts as having none past its position.
func (s *jobStore) positions(ctx context.Context, q queryer, dest string) ([]storedPosition, error) {
	rows, err := q.QueryContext(ctx, s.db.Rebind(`
SELECT destination_id, seq, done FROM delivery_positions WHERE destination_id = ? OR substr(destination_id, 1, ?) = ?`),
		dest, len(dest)+1, dest+"/")
	if err != nil {
		return nil, fmt.Errorf("reading the delivery positions of destination %q: %w", dest, err)
	}
	defer rows.Close()
	var out []storedPosition
	for rows.Next() {
		var key string
		var seq int64
		var done []byte
		if err := rows.Scan(&key, &seq, &done); err != nil {
			return nil, fmt.Errorf("reading the delivery positions of destination %q: %w", dest, err)
		}
		_, sh, err := parseKey(key)
		if err != nil {
			continue
		}
		p := storedPosition{shard: sh, seq: uint64(seq)}
		if p.done, err = decodeDone(done); err != nil {
			p.done = nil
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the delivery positions of destination %q: %w", dest, err)
	}
	return out, nil
}

// queryer is what positions reads through: the database or a transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// initShards gives every shard of an n-shard queue of dest that has no
// stored position the position seq, in one transaction: the shards start
// together, so none misses what another was sent.
func (s *jobStore) initShards(ctx context.Context, dest string, n int, seq uint64, now time.Time) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for k := range max(n, 1) {
			_, err := tx.ExecContext(ctx, s.db.Rebind(`
INSERT INTO delivery_positions (destination_id, seq, done, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (destination_id) DO NOTHING`), shard{k, max(n, 1)}.key(dest), int64(seq), []byte{}, ms(now))
			if err != nil {
				return fmt.Errorf("saving the first delivery position %d of destination %q: %w", seq, dest, err)
			}
		}
		return nil
	})
}

// settleShards deletes the positions old of dest's other shard counts
// (those the queue inherited from when it started) once every shard of
// its n-shard queue has passed what they say: nothing is inherited from
// them any more. Only those: a queue that lingers after its count was
// changed must not delete the positions of the count that followed.
func (s *jobStore) settleShards(ctx context.Context, dest string, n int, old []storedPosition) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.positions(ctx, tx, dest)
		if err != nil {
			return err
		}
		in := newInherited(old, n)
		if len(in.from) == 0 {
			return nil
		}
		passed := 0
		for _, r := range rows {
			if r.shard.n == n && r.seq >= in.until {
				passed++
			}
		}
		if passed < n {
			return nil
		}
		for _, r := range in.from {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM delivery_positions WHERE destination_id = ?`), r.shard.key(dest)); err != nil {
				return fmt.Errorf("deleting the delivery position of %s: %w", r.shard.key(dest), err)
			}
		}
		return nil
	})
}

// position is a destination's state in the log, to store.
type position struct {
	seq  uint64
	done []byte
}

// apply writes ops of destination dest and, when pos is set, the
// position of its queue key (see [shard.key]), in one transaction.
func (s *jobStore) apply(ctx context.Context, dest, key string, ops []op, pos *position, now time.Time) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for i := range ops {
			if err := s.applyOne(ctx, tx, dest, &ops[i]); err != nil {
				return fmt.Errorf("writing the delivery state of destination %q: %w", dest, err)
			}
		}
		if pos != nil {
			return s.setPosition(ctx, tx, key, *pos, now)
		}
		return nil
	})
}

func (s *jobStore) setPosition(ctx context.Context, tx *sql.Tx, dest string, pos position, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`
INSERT INTO delivery_positions (destination_id, seq, done, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (destination_id) DO UPDATE SET seq = excluded.seq, done = excluded.done, updated_at = excluded.updated_at`),
		dest, int64(pos.seq), nonNil(pos.done), ms(now))
	if err != nil {
		return fmt.Errorf("saving the delivery position %d of destination %q: %w", pos.seq, dest, err)
	}
	return nil
}

func (s *jobStore) applyOne(ctx context.Context, tx *sql.Tx, dest string, o *op) error {
	j := &o.job
	var err error
	switch o.kind {
	case opSchedule:
		_, err = tx.ExecContext(ctx, s.db.Rebind(`
INSERT INTO delivery_jobs (destination_id, id, message_id, source_id, event_type, event, received_at, attempts,
	first_attempt_at, next_attempt_at, last_status, last_reason, last_error, last_request, last_response, replay_id, shard)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (destination_id, id) DO NOTHING`),
			dest, j.ID, text(j.MessageID), j.SourceID, text(j.Type), text(string(j.Event)), ms(j.ReceivedAt), j.Attempts,
			ms(j.FirstAttemptAt), ms(j.NextAttemptAt), j.LastStatus, text(j.LastReason), text(j.LastError),
			nonNil(j.LastRequest), nonNil(j.LastResponse), nullString(j.ReplayID), j.Shard)
	case opRetry:
		_, err = tx.ExecContext(ctx, s.db.Rebind(`
UPDATE delivery_jobs SET attempts = ?, next_attempt_at = ?, last_status = ?, last_reason = ?, last_error = ?,
	last_request = ?, last_response = ?
WHERE destination_id = ? AND id = ?`),
			j.Attempts, ms(j.NextAttemptAt), j.LastStatus, text(j.LastReason), text(j.LastError),
			nonNil(j.LastRequest), nonNil(j.LastResponse), dest, j.ID)
	case opDone:
		_, err = tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM delivery_jobs WHERE destination_id = ? AND id = ?`), dest, j.ID)
	case opDead:
		d := o.dead
		if o.fromJob && d.Request == nil && d.Response == nil {
			// Expired before it was tried again: the last attempt's
			// exchange is the job's.
			err = tx.QueryRowContext(ctx, s.db.Rebind(`SELECT last_request, last_response FROM delivery_jobs WHERE destination_id = ? AND id = ?`),
				dest, j.ID).Scan(&d.Request, &d.Response)
			if errors.Is(err, sql.ErrNoRows) {
				err = nil
			}
			if err != nil {
				break
			}
		}
		_, err = tx.ExecContext(ctx, s.db.Rebind(`
INSERT INTO dead_letters (destination_id, message_id, source_id, event_type, event, received_at, reason, status_code,
	error_reason, error, request, response, attempts, first_attempt_at, failed_at, replay_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			dest, text(d.MessageID), d.SourceID, text(d.EventType), text(string(d.Event)), ms(d.ReceivedAt), d.Reason, d.StatusCode,
			text(d.ErrorReason), text(d.Error), nonNil(d.Request), nonNil(d.Response), d.Attempts, ms(d.FirstAttemptAt), ms(d.FailedAt),
			nullString(d.ReplayID))
		if err == nil && o.fromJob {
			_, err = tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM delivery_jobs WHERE destination_id = ? AND id = ?`), dest, j.ID)
		}
	}
	if err != nil {
		return fmt.Errorf("job %s (message %s): %w", j.ID, j.MessageID, err)
	}
	return nil
}

// text makes a string from outside (a destination's answer, an event's
// field) storable on both engines: PostgreSQL refuses invalid UTF-8 and
// NUL in TEXT, and a refused write would stop the queue.
func text(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// due returns up to limit jobs of shard sh of dest whose next attempt is
// at or before now, oldest first, leaving out those in skip (in flight,
// at most skipped of them).
func (s *jobStore) due(ctx context.Context, dest string, sh shard, now time.Time, limit, skipped int, skip func(id string) bool) ([]job, error) {
	rows, err := s.db.SQL().QueryContext(ctx, s.db.Rebind(`
SELECT `+jobColumns+` FROM delivery_jobs
WHERE destination_id = ? AND shard % ? = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?`),
		dest, max(sh.n, 1), sh.k, ms(now), limit+skipped)
	if err != nil {
		return nil, fmt.Errorf("reading the due jobs of destination %q: %w", dest, err)
	}
	defer rows.Close()
	var out []job
	for rows.Next() && len(out) < limit {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("reading the due jobs of destination %q: %w", dest, err)
		}
		if !skip(j.ID) {
			out = append(out, j)
		}
	}
	return out, rows.Err()
}

const jobColumns = `id, message_id, source_id, event_type, event, received_at, attempts, first_attempt_at,
	next_attempt_at, last_status, last_reason, last_error, COALESCE(replay_id, '')`

type scanner interface{ Scan(dest ...any) error }

// scanJob scans jobColumns, then extra.
func scanJob(r scanner, extra ...any) (job, error) {
	var j job
	var event string
	var recv, first, next int64
	err := r.Scan(append([]any{&j.ID, &j.MessageID, &j.SourceID, &j.Type, &event, &recv, &j.Attempts, &first, &next,
		&j.LastStatus, &j.LastReason, &j.LastError, &j.ReplayID}, extra...)...)
	j.Event = []byte(event)
	j.ReceivedAt, j.FirstAttemptAt, j.NextAttemptAt = fromMS(recv), fromMS(first), fromMS(next)
	return j, err
}

// countJobs returns how many jobs dest has awaiting retry.
func (s *jobStore) countJobs(ctx context.Context, dest string) (int64, error) {
	var n int64
	err := s.db.SQL().QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM delivery_jobs WHERE destination_id = ?`), dest).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the jobs of destination %q: %w", dest, err)
	}
	return n, nil
}

// deadFilter selects dead letters.
type deadFilter struct {
	Destination string
	Reason      string // discarded | expired | "" for both
	MessageID   string
	From, To    time.Time // failed_at in [From, To); zero: unbounded
	ReplayID    string
	// NotReplay leaves out the dead letters of this replay (those that
	// failed again), so that a replay ends.
	NotReplay string
	// Among, when not nil, narrows to these destinations.
	Among   []string
	AfterID int64 // pagination: ids greater than this
	// BeforeID paginates newest first: ids less than this.
	BeforeID int64
}

func (f deadFilter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(c string, v any) { conds = append(conds, c); args = append(args, v) }
	if f.Destination != "" {
		add("destination_id = ?", f.Destination)
	}
	if f.Reason != "" {
		add("reason = ?", f.Reason)
	}
	if f.MessageID != "" {
		add("message_id = ?", f.MessageID)
	}
	if !f.From.IsZero() {
		add("failed_at >= ?", ms(f.From))
	}
	if !f.To.IsZero() {
		add("failed_at < ?", ms(f.To))
	}
	if f.ReplayID != "" {
		add("replay_id = ?", f.ReplayID)
	}
	if f.Among != nil {
		if len(f.Among) == 0 {
			conds = append(conds, "1 = 0")
		} else {
			conds = append(conds, "destination_id IN (?"+strings.Repeat(", ?", len(f.Among)-1)+")")
			for _, d := range f.Among {
				args = append(args, d)
			}
		}
	}
	if f.NotReplay != "" {
		add("COALESCE(replay_id, '') <> ?", f.NotReplay)
	}
	if f.AfterID > 0 {
		add("id > ?", f.AfterID)
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

const deadColumns = `id, destination_id, message_id, source_id, event_type, event, received_at, reason, status_code,
	error_reason, error, request, response, attempts, first_attempt_at, failed_at, COALESCE(replay_id, '')`

func scanDead(r scanner) (DeadLetter, error) {
	var d DeadLetter
	var event string
	var recv, first, failed int64
	err := r.Scan(&d.ID, &d.DestinationID, &d.MessageID, &d.SourceID, &d.EventType, &event, &recv, &d.Reason,
		&d.StatusCode, &d.ErrorReason, &d.Error, &d.Request, &d.Response, &d.Attempts, &first, &failed, &d.ReplayID)
	d.Event = []byte(event)
	d.ReceivedAt, d.FirstAttemptAt, d.FailedAt = fromMS(recv), fromMS(first), fromMS(failed)
	return d, err
}

// deadLetters lists dead letters matching f, by id (newest first when
// newest), at most limit.
func (s *jobStore) deadLetters(ctx context.Context, f deadFilter, limit int, newest bool) ([]DeadLetter, error) {
	where, args := f.where()
	order := " ORDER BY id"
	if newest {
		order = " ORDER BY id DESC"
	}
	rows, err := s.db.SQL().QueryContext(ctx, s.db.Rebind(`SELECT `+deadColumns+` FROM dead_letters`+where+order+` LIMIT ?`),
		append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		d, err := scanDead(rows)
		if err != nil {
			return nil, fmt.Errorf("listing dead letters: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// countDead counts the dead letters matching f.
func (s *jobStore) countDead(ctx context.Context, f deadFilter) (int64, error) {
	where, args := f.where()
	var n int64
	if err := s.db.SQL().QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM dead_letters`+where), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting dead letters: %w", err)
	}
	return n, nil
}

// requeue moves up to limit dead letters matching f back into
// delivery_jobs, due at now with no attempts, tagged with replayID, and
// returns how many it moved. f.ReplayID must be empty: a replay takes
// dead letters of no replay or of earlier ones alike.
func (s *jobStore) requeue(ctx context.Context, f deadFilter, replayID string, limit int, now time.Time) (int, error) {
	var moved int
	f.NotReplay = replayID
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		moved = 0
		where, args := f.where()
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT `+deadColumns+` FROM dead_letters`+where+` ORDER BY id LIMIT ?`), append(args, limit)...)
		if err != nil {
			return err
		}
		var batch []DeadLetter
		for rows.Next() {
			d, err := scanDead(rows)
			if err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range batch {
			// Delete first: a concurrent replay that selected the same
			// row moves it only if its delete wins.
			res, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM dead_letters WHERE id = ?`), d.ID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				continue
			}
			o := op{kind: opSchedule, job: job{
				ID: fmt.Sprintf("r%d", d.ID), MessageID: d.MessageID, SourceID: d.SourceID, Type: d.EventType,
				Event: d.Event, ReceivedAt: d.ReceivedAt, FirstAttemptAt: now, NextAttemptAt: now,
				LastStatus: d.StatusCode, LastReason: d.ErrorReason, LastError: d.Error,
				LastRequest: d.Request, LastResponse: d.Response, ReplayID: replayID, Shard: int(d.ID % (1 << 30)),
			}}
			if err := s.applyOne(ctx, tx, d.DestinationID, &o); err != nil {
				return err
			}
			if d.ReplayID != "" {
				// A failure of an earlier replay is now this one's to
				// account for.
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE delivery_replays SET handed_over = handed_over + 1 WHERE id = ?`), d.ReplayID); err != nil {
					return err
				}
			}
			moved++
		}
		_, err = tx.ExecContext(ctx, s.db.Rebind(`
INSERT INTO delivery_replays (id, moved, created_at, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET moved = delivery_replays.moved + excluded.moved, updated_at = excluded.updated_at`),
			replayID, moved, ms(now), ms(now))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("replaying dead letters: %w", err)
	}
	return moved, nil
}

// ReplayStatus is the progress of a replay: of Moved events put back into
// the queues, Pending await delivery, Failed were dead-lettered again,
// HandedOver failed again and were then taken by a later replay, and the
// rest were delivered.
type ReplayStatus struct {
	ID         string    `json:"id"`
	Moved      int64     `json:"moved"`
	HandedOver int64     `json:"handed_over"`
	Pending    int64     `json:"pending"`
	Failed     int64     `json:"failed"`
	Delivered  int64     `json:"delivered"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// replay returns a replay's progress, and false when there is no such
// replay.
func (s *jobStore) replay(ctx context.Context, id string) (ReplayStatus, bool, error) {
	r := ReplayStatus{ID: id}
	var created, updated int64
	err := s.db.SQL().QueryRowContext(ctx, s.db.Rebind(`SELECT moved, handed_over, created_at, updated_at FROM delivery_replays WHERE id = ?`), id).
		Scan(&r.Moved, &r.HandedOver, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err == nil {
		err = s.db.SQL().QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM delivery_jobs WHERE replay_id = ?`), id).Scan(&r.Pending)
	}
	if err == nil {
		r.Failed, err = s.countDead(ctx, deadFilter{ReplayID: id})
	}
	if err != nil {
		return r, false, fmt.Errorf("reading replay %q: %w", id, err)
	}
	r.CreatedAt, r.UpdatedAt = fromMS(created), fromMS(updated)
	r.Delivered = max(r.Moved-r.HandedOver-r.Pending-r.Failed, 0)
	return r, true, nil
}

// jobsOf returns the jobs awaiting retry for a message id (any
// destination when dest is empty), at most limit.
func (s *jobStore) jobsOf(ctx context.Context, dest, messageID string, limit int) ([]string, []job, error) {
	q := `SELECT ` + jobColumns + `, destination_id FROM delivery_jobs WHERE 1 = 1`
	var args []any
	if messageID != "" {
		q += ` AND message_id = ?`
		args = append(args, messageID)
	}
	if dest != "" {
		q += ` AND destination_id = ?`
		args = append(args, dest)
	}
	q += ` ORDER BY next_attempt_at LIMIT ?`
	rows, err := s.db.SQL().QueryContext(ctx, s.db.Rebind(q), append(args, limit)...)
	if err != nil {
		return nil, nil, fmt.Errorf("reading jobs: %w", err)
	}
	defer rows.Close()
	var dests []string
	var out []job
	for rows.Next() {
		var d string
		j, err := scanJob(rows, &d)
		if err != nil {
			return nil, nil, fmt.Errorf("reading jobs: %w", err)
		}
		dests = append(dests, d)
		out = append(out, j)
	}
	return dests, out, rows.Err()
}
