package crash_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
)

const (
	deliverAdminToken = "crash-test-admin-token-0123456789abcdef"
	// deliverEvents events are sent, deliverBatch per /v1/batch request.
	deliverEvents = 20000
	deliverBatch  = 100
	// deliverConcurrency is the destination's delivery concurrency; the
	// webhook's batch_size is 1 (one event per request, keyed by its
	// messageId).
	deliverConcurrency  = 8
	deliverWebhookBatch = 1
	// deliverFailPct of the events get a 500 at their first request, so
	// that the retry store holds jobs at the kills too.
	deliverFailPct = 20
	// deliverDrainWait is how long after the last restart every event
	// must have reached the receiver.
	deliverDrainWait = 25 * time.Second
	// deliverSaveWindow bounds how old the stored position can be at a
	// kill: the queue's writer saves it with every batch of state writes
	// and at least every second (queue.go), plus time for the write.
	deliverSaveWindow = 1500 * time.Millisecond
)

// deliverID is the messageId of event i of batch b.
func deliverID(b, i int) string { return fmt.Sprintf("dlv-b%03d-e%02d", b, i) }

// hookReceiver is the webhook endpoint: it records every request per
// messageId and answers 200 after 0–3 ms, or 500 to the first request of
// the events failFirst picks. The epoch is how many times the server has
// been killed so far: it dates each event's first request and first 200.
type hookReceiver struct {
	mu       sync.Mutex
	epoch    int
	ids      map[string]*hookRecord
	tries    []tryRecord
	active   int // requests being answered
	fails    int
	problems []string
}

// tryRecord is one request: the epoch and when it came.
type tryRecord struct {
	epoch int
	at    time.Time
}

// hookRecord is what the receiver knows of one event.
type hookRecord struct {
	tries     int  // requests carrying the messageId
	delivered int  // of them answered 200: what the receiver counts as received
	failed    bool // one was answered 500 on purpose, so the event has been in the retry store
	// firstTry and firstDelivered are the epochs of the first request and
	// the first 200.
	firstTry, firstDelivered int
}

// failFirst says whether the receiver answers 500 to attempt n of an
// event: ~deliverFailPct% of first attempts, decided by a hash of the
// messageId and the attempt.
func failFirst(id string, n int) bool {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", id, n)
	return n == 1 && h.Sum32()%100 < deliverFailPct
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var ev struct {
		MessageID string `json:"messageId"`
	}
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	if err != nil || ev.MessageID == "" || req.Method != http.MethodPost || req.URL.Path != "/hook" {
		r.problem(fmt.Sprintf("%s %s with body %.200q: not a webhook request of one event (%v)", req.Method, req.URL.Path, body, err))
		http.Error(w, "not an event", http.StatusBadRequest)
		return
	}
	id := ev.MessageID
	if k := req.Header.Get("Idempotency-Key"); k != id {
		r.problem(fmt.Sprintf("event %s came with Idempotency-Key %q", id, k))
	}
	r.mu.Lock()
	r.tries = append(r.tries, tryRecord{epoch: r.epoch, at: time.Now()})
	r.active++
	rec := r.ids[id]
	if rec == nil {
		rec = &hookRecord{firstTry: r.epoch}
		r.ids[id] = rec
	}
	rec.tries++
	attempt := rec.tries
	r.mu.Unlock()

	time.Sleep(rand.N(3*time.Millisecond + 1))
	code := http.StatusOK
	if failFirst(id, attempt) {
		code = http.StatusInternalServerError
	}
	r.mu.Lock()
	r.active--
	if code == http.StatusOK {
		rec.delivered++
		if rec.delivered == 1 {
			rec.firstDelivered = r.epoch
		}
	} else {
		rec.failed = true
		r.fails++
	}
	r.mu.Unlock()
	w.WriteHeader(code)
}

func (r *hookReceiver) problem(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, s)
}

// received returns how many distinct events were answered 200.
func (r *hookReceiver) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.ids {
		if rec.delivered > 0 {
			n++
		}
	}
	return n
}

// inFlight returns how many requests are being answered.
func (r *hookReceiver) inFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// killed starts the next epoch: every request of the killed server has
// been dated.
func (r *hookReceiver) killed() {
	r.mu.Lock()
	r.epoch++
	r.mu.Unlock()
}

// deliveryStatus is what GET /api/v1/destinations/{id}/delivery answers.
type deliveryStatus struct {
	Running     bool   `json:"running"`
	Position    uint64 `json:"position"`
	LastSeq     uint64 `json:"last_seq"`
	InFlight    int    `json:"in_flight_jobs"`
	RetryJobs   int64  `json:"awaiting_retry"`
	DeadLetters int64  `json:"dead_letters"`
}

func queueStatus(ctx context.Context, addr string) (deliveryStatus, error) {
	var st deliveryStatus
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/destinations/hook/delivery", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+deliverAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET delivery status: %d %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("GET delivery status: %w in %s", err, body)
	}
	return st, nil
}

// queueWatch polls a server's delivery status, keeping the last answer.
// The position it reports is read from the state store, and a stored
// position only grows: so the last one seen before a kill is at most the
// one the restarted server reads from.
type queueWatch struct {
	stop func()
	done chan struct{}
	mu   sync.Mutex
	last deliveryStatus
	seen bool
}

func watchQueue(addr string) *queueWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &queueWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			if st, err := queueStatus(ctx, addr); err == nil {
				w.mu.Lock()
				w.last, w.seen = st, true
				w.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

// close stops the polling and returns the last status seen. It is safe
// to call twice.
func (w *queueWatch) close() (deliveryStatus, bool) {
	w.stop()
	<-w.done
	return w.last, w.seen
}

// status returns the last status seen; the zero value before the first.
func (w *queueWatch) status() deliveryStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// sendBatches posts the batches of events as a Segment SDK does: each
// batch until it gets a 200, across the server's deaths (the log's dedup
// on messageId makes a resent batch harmless). It returns when every
// batch is acknowledged or ctx ends.
func sendBatches(ctx context.Context, addr string, batches <-chan []map[string]any, acked func([]map[string]any)) {
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for batch := range batches {
				body, _ := json.Marshal(map[string]any{"batch": batch})
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/batch", bytes.NewReader(body))
					req.SetBasicAuth(writeKey, "")
					resp, err := client.Do(req)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							acked(batch)
							break
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

// waitUntil polls cond every 20 ms and fails the test with what()
// when it does not hold within d.
func waitUntil(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killRecord is what the test knew at one kill.
type killRecord struct {
	at       time.Time      // when the kill signal was sent
	inFlight int            // requests the receiver was answering then
	received int            // distinct events the receiver had
	status   deliveryStatus // the last delivery status seen before the kill
	seen     bool           // whether a status was seen at all
}

// TestKill9DeliversEveryAcknowledgedEvent proves delivery's at-least-once
// promise: the server is killed twice while webhook deliveries are in
// flight and the retry store holds jobs, and after the restarts every
// acknowledged event reaches the receiver, every request keyed by the
// event's messageId, with duplicates only of events that a kill caught
// unfinished.
func TestKill9DeliversEveryAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the server binary; skipped with -short")
	}
	began := time.Now()
	bin := buildBinary(t)
	rcv := &hookReceiver{ids: map[string]*hookRecord{}}
	hook := httptest.NewServer(rcv)
	t.Cleanup(hook.Close)

	dataDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "conflux.yaml")
	yaml := fmt.Sprintf(`admin_token: %s
sources:
  - id: web
    write_key: %s
destinations:
  - id: hook
    type: webhook
    sources: [web]
    settings: {url: %s/hook, timeout: 5s}
    delivery: {concurrency: %d}
`, deliverAdminToken, writeKey, hook.URL, deliverConcurrency)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := start(t, bin, dataDir, cfg, addr)
	// A new destination starts at the end of the stream: send only once
	// its queue runs.
	var st deliveryStatus
	waitUntil(t, 10*time.Second, func() bool {
		var err error
		st, err = queueStatus(t.Context(), addr)
		return err == nil && st.Running
	}, func() string { return fmt.Sprintf("the queue of hook is not running: %+v", st) })
	watch := watchQueue(addr)
	// On a failure, the server running then is killed (and the hook
	// closed after it).
	t.Cleanup(func() {
		watch.close()
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	t.Logf("server ready, queue running, %v after the start", time.Since(began).Round(time.Millisecond))

	// The events, and the sender that runs across the kills.
	var mu sync.Mutex
	acked := map[string]bool{}
	batches := make(chan []map[string]any, deliverEvents/deliverBatch)
	for b := range deliverEvents / deliverBatch {
		batch := make([]map[string]any, deliverBatch)
		for i := range batch {
			batch[i] = map[string]any{
				"type": "track", "event": "Delivery Crash Test", "userId": fmt.Sprintf("user-%d", (b*deliverBatch+i)%53),
				"messageId": deliverID(b, i), "properties": map[string]any{"b": b, "i": i},
			}
		}
		batches <- batch
	}
	close(batches)
	ctx, cancel := context.WithCancel(t.Context())
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		sendBatches(ctx, addr, batches, func(batch []map[string]any) {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range batch {
				acked[e["messageId"].(string)] = true
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-sent })
	nAcked := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }

	// Two kills: the first in the middle of the first pass over the log,
	// the second later, once the retry store holds jobs for certain.
	kills := []struct {
		name string
		when func() bool
	}{
		{"while the log is read", func() bool { return rcv.received() >= deliverEvents/4 }},
		{"with jobs awaiting retry", func() bool {
			return rcv.received() >= deliverEvents*3/5 && watch.status().RetryJobs > 0
		}},
	}
	var at []killRecord
	for k, kill := range kills {
		waitUntil(t, 30*time.Second, kill.when, func() string {
			return fmt.Sprintf("kill %d (%s) never came: receiver has %d distinct events, %d acknowledged, status %+v",
				k+1, kill.name, rcv.received(), nAcked(), watch.status())
		})
		killAt := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		inFlight := rcv.inFlight()
		_ = p.cmd.Wait()
		last, seen := watch.close()
		// Let the receiver answer the requests the dead server had sent.
		time.Sleep(100 * time.Millisecond)
		rec := killRecord{at: killAt, inFlight: inFlight, received: rcv.received(), status: last, seen: seen}
		rcv.killed()
		at = append(at, rec)
		t.Logf("kill %d (%s) at %v: %d requests in flight, receiver had %d distinct events, %d acknowledged; last status seen: position %d of %d, %d awaiting retry, %d jobs in flight",
			k+1, kill.name, time.Since(began).Round(time.Millisecond), inFlight, rec.received, nAcked(),
			last.Position, last.LastSeq, last.RetryJobs, last.InFlight)
		p = start(t, bin, dataDir, cfg, addr)
		watch = watchQueue(addr)
	}

	// Every acknowledged event reaches the receiver. An event fails at
	// most once (its first request), so once the first pass over the log
	// is finished (the position at the stream's end) every job is due
	// within the first retry delay, DefaultBackoff.Min; the receiver
	// answers in under 3 ms, deliverConcurrency at a time, so the retry
	// store (deliverFailPct of the events at most) then drains in a few
	// seconds. deliverDrainWait after the last restart is a wide margin.
	<-sent
	if n := nAcked(); n != deliverEvents {
		t.Fatalf("%d of %d events acknowledged", n, deliverEvents)
	}
	deadline := time.Now().Add(deliverDrainWait)
	var passDone, allDue time.Time
	jobsDue := int64(-1)
	for rcv.received() < deliverEvents && time.Now().Before(deadline) {
		now, s := time.Now(), watch.status()
		if passDone.IsZero() && s.Running && s.Position == s.LastSeq {
			passDone = now
		}
		if !passDone.IsZero() && jobsDue < 0 && now.Sub(passDone) >= deliver.DefaultBackoff.Min {
			allDue, jobsDue = now, s.RetryJobs
		}
		time.Sleep(20 * time.Millisecond)
	}
	var pending map[string]bool
	if n := rcv.received(); n < deliverEvents {
		s := watch.status()
		drain := "the first pass over the log did not finish"
		if jobsDue >= 0 {
			d := time.Since(allDue)
			drain = fmt.Sprintf("every job was due %v before the deadline and awaiting_retry went from %d to %d since: %.1f jobs/s",
				d.Round(time.Millisecond), jobsDue, s.RetryJobs, float64(jobsDue-s.RetryJobs)/d.Seconds())
		} else if !passDone.IsZero() {
			drain = fmt.Sprintf("the first pass over the log finished %v before the deadline", time.Since(passDone).Round(time.Millisecond))
		}
		t.Errorf("the receiver has %d of %d acknowledged events %v after the last restart (status %+v); %s",
			n, deliverEvents, deliverDrainWait, s, drain)
		pending = checkAwaiting(t, addr, rcv)
	} else {
		t.Logf("every event received at %v", time.Since(began).Round(time.Millisecond))
		// Then the retry store empties (a job whose event was delivered
		// again from the log after a kill is still tried once more).
		waitUntil(t, 15*time.Second, func() bool {
			s := watch.status()
			return s.Running && s.RetryJobs == 0 && s.InFlight == 0 && s.Position == s.LastSeq
		}, func() string { return fmt.Sprintf("the queue is not idle: %+v", watch.status()) })
	}
	final, _ := watch.close()
	if final.DeadLetters != 0 {
		t.Errorf("%d dead letters, want none: every 500 is retried", final.DeadLetters)
	}
	if v := metric(t, addr, `conflux_deliver_events_total{destination="hook",outcome="delivered"}`); v <= 0 {
		t.Errorf(`conflux_deliver_events_total{destination="hook",outcome="delivered"} = %v after the last restart, want > 0`, v)
	}

	// A clean stop, within the server's 30 s drain.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("graceful stop: %v\n%s", err, p.stderr)
		}
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-exited
		t.Fatalf("the server did not stop within 40s of SIGTERM; stderr:\n%s", p.stderr)
	}

	checkDeliveries(t, dataDir, rcv, at, pending)
	t.Logf("test took %v", time.Since(began).Round(time.Millisecond))
}

// checkAwaiting looks up, through GET /api/v1/jobs, each event the
// receiver has not got: each must await retry (or be in flight), else it
// is lost. It returns those that await.
func checkAwaiting(t *testing.T, addr string, rcv *hookReceiver) map[string]bool {
	t.Helper()
	ids := make(chan string)
	var mu sync.Mutex
	pending := map[string]bool{}
	var lost []string
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for id := range ids {
				req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/jobs?destination=hook&message_id="+id, nil)
				req.Header.Set("Authorization", "Bearer "+deliverAdminToken)
				var out struct {
					Jobs []struct {
						State string `json:"state"`
					} `json:"jobs"`
				}
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET /api/v1/jobs: %s", resp.Status)
					} else {
						err = json.NewDecoder(resp.Body).Decode(&out)
					}
					resp.Body.Close()
				}
				waiting := false
				for _, j := range out.Jobs {
					waiting = waiting || j.State == deliver.StateAwaitingRetry || j.State == deliver.StateExecuting
				}
				// The job is deleted after the receiver's 200: one found
				// gone may have been delivered since the receiver was read.
				rcv.mu.Lock()
				rec := rcv.ids[id]
				delivered := rec != nil && rec.delivered > 0
				rcv.mu.Unlock()
				mu.Lock()
				switch {
				case err == nil && waiting:
					pending[id] = true
				case err == nil && delivered:
				default:
					lost = append(lost, fmt.Sprintf("%s (jobs %+v, %v)", id, out.Jobs, err))
				}
				mu.Unlock()
			}
		})
	}
	rcv.mu.Lock()
	var missing []string
	for b := range deliverEvents / deliverBatch {
		for i := range deliverBatch {
			id := deliverID(b, i)
			if rec := rcv.ids[id]; rec == nil || rec.delivered == 0 {
				missing = append(missing, id)
			}
		}
	}
	rcv.mu.Unlock()
	for _, id := range missing {
		ids <- id
	}
	close(ids)
	wg.Wait()
	t.Logf("of the %d events not received, %d await retry, %d were delivered while they were looked up",
		len(missing), len(pending), len(missing)-len(pending)-len(lost))
	slices.Sort(lost)
	for i, l := range lost {
		if i == 5 {
			break
		}
		t.Errorf("event %s is neither received nor awaiting retry: lost", l)
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged events lost", len(lost))
	}
	return pending
}

// checkDeliveries checks what the receiver got against the processed log:
// every event once or more (or, in pending, still awaiting retry), and
// each duplicate explained by a kill.
func checkDeliveries(t *testing.T, dataDir string, rcv *hookReceiver, at []killRecord, pending map[string]bool) {
	t.Helper()
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for i, p := range rcv.problems {
		if i == 5 {
			t.Errorf("… %d problems in all", len(rcv.problems))
			break
		}
		t.Error(p)
	}

	// Where each event is in processed.
	l, err := stream.Open(t.Context(), stream.Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seqOf := map[string]uint64{}
	var perMsg []int
	for _, m := range streamtest.StreamRecordsRaw(t, l, stream.ProcessedStream) {
		n := 0
		for rec, err := range event.Records(m.Data) {
			if err != nil {
				t.Fatalf("processed message %d: %v", m.Seq, err)
			}
			var e struct {
				MessageID string `json:"messageId"`
			}
			if err := json.Unmarshal(rec.JSON, &e); err != nil {
				t.Fatalf("processed message %d: %v", m.Seq, err)
			}
			if _, twice := seqOf[e.MessageID]; twice {
				t.Errorf("event %s is in processed twice (messages %d and %d)", e.MessageID, seqOf[e.MessageID], m.Seq)
			}
			seqOf[e.MessageID] = m.Seq
			n++
		}
		perMsg = append(perMsg, n)
	}
	if len(seqOf) != deliverEvents {
		t.Errorf("processed holds %d events, want %d", len(seqOf), deliverEvents)
	}

	missing, dups, dupIDs, unexplained := 0, 0, 0, 0
	for id := range seqOf {
		rec := rcv.ids[id]
		if pending[id] && (rec == nil || rec.delivered == 0) {
			continue // reported by checkAwaiting
		}
		if rec == nil || rec.delivered == 0 {
			missing++
			if missing <= 5 {
				t.Errorf("event %s was acknowledged but never received", id)
			}
			continue
		}
		if rec.delivered == 1 {
			continue
		}
		dups += rec.delivered - 1
		dupIDs++
		if !explained(rec, seqOf[id], at) {
			unexplained++
			if unexplained <= 5 {
				t.Errorf("event %s (processed message %d) received %d times in %d requests, first in epoch %d: no kill caught it unfinished",
					id, seqOf[id], rec.delivered, rec.tries, rec.firstTry)
			}
		}
	}
	for id := range rcv.ids {
		if _, ok := seqOf[id]; !ok {
			t.Errorf("the receiver got %s, which is not in processed", id)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events never received", missing, len(seqOf))
	}

	// The bound on duplicates. The promise is that a kill makes the
	// restarted server send again only what was in flight; the queue's
	// writer saves its position with every batch of state writes and at
	// least every second (queue.go), which widens that to what was tried
	// since the last save: at kill k, at most F_k, the requests the killed
	// server made in the deliverSaveWindow before the kill (those in
	// flight among them). A job from the retry store delivered in that
	// window but whose deletion was not yet committed is one of those
	// requests too. So the duplicate deliveries are at most ΣF_k.
	//
	// The stored position is a processed message's sequence (tracker.go):
	// an event counts as finished for it only once every event of its
	// message is, so the events sent again are exactly those tried before
	// the kill whose message is after the stored position — L_k, with the
	// last position the status API showed before the kill (it reads the
	// stored one, which only grows). Every duplicate must be one of them
	// (explained); that L_k stays within F_k depends on each processed
	// message (up to 4 MiB of events) being delivered within the window.
	bound := 0
	for k, kr := range at {
		fk, lk := 0, 0
		for _, tr := range rcv.tries {
			if tr.epoch == k && !tr.at.Before(kr.at.Add(-deliverSaveWindow)) {
				fk++
			}
		}
		for id, rec := range rcv.ids {
			if rec.firstTry <= k && (!kr.seen || seqOf[id] > kr.status.Position) {
				lk++
			}
		}
		bound += fk
		t.Logf("kill %d: %d requests in flight, F = %d requests in the %v before it, L = %d events tried and after the stored position %d",
			k+1, kr.inFlight, fk, deliverSaveWindow, lk, kr.status.Position)
	}
	slices.Sort(perMsg)
	t.Logf("%d events in %d processed messages (%d to %d events each); %d requests, %d answered 500 on purpose",
		len(seqOf), len(perMsg), perMsg[0], perMsg[len(perMsg)-1], len(rcv.tries), rcv.fails)
	t.Logf("%d duplicate deliveries of %d events after %d kills; bound ΣF = %d", dups, dupIDs, len(at), bound)
	if len(pending) > 0 {
		t.Logf("%d events still awaited retry: the duplicates are counted before those retries", len(pending))
	}
	if dups > bound {
		t.Errorf("%d duplicate deliveries, more than the %d requests made in the %v before the kills", dups, bound, deliverSaveWindow)
	}
	if unexplained > 0 {
		t.Errorf("%d events received more than once that no kill caught unfinished", unexplained)
	}
}

// explained reports whether some kill caught the event unfinished: tried
// before the kill with its processed message after the position last
// seen, or delivered from the retry store before the kill.
func explained(rec *hookRecord, seq uint64, at []killRecord) bool {
	for k, kr := range at {
		if rec.firstTry <= k && (!kr.seen || seq > kr.status.Position) {
			return true
		}
		if rec.failed && rec.firstDelivered <= k {
			return true
		}
	}
	return false
}
