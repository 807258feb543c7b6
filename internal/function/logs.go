package function

import (
	"slices"
	"sync"
	"time"
)

// LogEntry is the console output of one call.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Version int       `json:"version"`
	// Status is the call's outcome: ok, retry, discard or drop.
	Status string `json:"status"`
	// Text is what the call wrote, at most MaxLogBytes.
	Text string `json:"text"`
}

// logRingSize is how many calls' logs are kept per function.
const logRingSize = 100

// LogRing keeps the logs of a function's most recent calls that wrote any.
type LogRing struct {
	mu      sync.Mutex
	entries []LogEntry
	next    int
}

func (l *LogRing) add(e LogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) < logRingSize {
		l.entries = append(l.entries, e)
		return
	}
	l.entries[l.next] = e
	l.next = (l.next + 1) % logRingSize
}

// Entries returns the kept logs, newest first.
func (l *LogRing) Entries() []LogEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append(slices.Clone(l.entries[l.next:]), l.entries[:l.next]...)
	slices.Reverse(out)
	return out
}

func (r *Runner) ring(id string) *LogRing {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.logs[id]
	if !ok {
		l = &LogRing{}
		r.logs[id] = l
	}
	return l
}

// Logs returns the logs of function id's most recent calls that wrote
// any (up to 100), newest first.
func (r *Runner) Logs(id string) []LogEntry { return r.ring(id).Entries() }
