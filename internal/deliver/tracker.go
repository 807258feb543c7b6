package deliver

import "sync"

// tracker knows, for one queue, which processed messages are finished:
// every event of theirs delivered, filtered, awaiting retry in the store
// or dead-lettered. Its position is the highest sequence up to which every
// message is finished, which is what the queue may store as its position
// in the log: a restart reads from there, so at most the unfinished
// events are sent again.
type tracker struct {
	mu      sync.Mutex
	pending []trackEntry // in sequence order
	pos     uint64
}

type trackEntry struct {
	seq       uint64
	remaining int
	sealed    bool
}

func newTracker(pos uint64) *tracker { return &tracker{pos: pos} }

// open starts message seq; the reader opens messages in order.
func (t *tracker) open(seq uint64) {
	t.mu.Lock()
	t.pending = append(t.pending, trackEntry{seq: seq})
	t.mu.Unlock()
}

// add counts one more unfinished event of the message opened last.
func (t *tracker) add() {
	t.mu.Lock()
	t.pending[len(t.pending)-1].remaining++
	t.mu.Unlock()
}

// seal says the message opened last has no more events.
func (t *tracker) seal() {
	t.mu.Lock()
	t.pending[len(t.pending)-1].sealed = true
	t.advance()
	t.mu.Unlock()
}

// done finishes one event of message seq.
func (t *tracker) done(seq uint64) {
	t.mu.Lock()
	for i := range t.pending {
		if t.pending[i].seq == seq {
			t.pending[i].remaining--
			break
		}
	}
	t.advance()
	t.mu.Unlock()
}

func (t *tracker) advance() {
	n := 0
	for n < len(t.pending) && t.pending[n].sealed && t.pending[n].remaining <= 0 {
		t.pos = t.pending[n].seq
		n++
	}
	if n > 0 {
		t.pending = append(t.pending[:0], t.pending[n:]...)
	}
}

// position returns the sequence up to which every message is finished.
func (t *tracker) position() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
}

// unfinished returns how many messages are open.
func (t *tracker) unfinished() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}
