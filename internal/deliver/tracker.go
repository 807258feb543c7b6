package deliver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// tracker knows, for one queue, which records of the processed messages
// it has read are finished: delivered, filtered, awaiting retry in the
// store or dead-lettered. Its state is a position — the highest sequence
// up to which every message is finished — and, for the messages after it
// that are partly finished, which of their records are. The queue stores
// both, so that a restart sends again only the records that were not
// finished: those in flight.
type tracker struct {
	mu      sync.Mutex
	pending []*trackEntry // in sequence order
	pos     uint64
	// restored are the finished records of messages after pos, from the
	// stored state; the reader skips them when it reads those messages.
	restored map[uint64][]uint64
}

type trackEntry struct {
	seq       uint64
	remaining int
	sealed    bool
	done      []uint64 // bitmap of finished record indexes
}

func newTracker(pos uint64, restored map[uint64][]uint64) *tracker {
	return &tracker{pos: pos, restored: restored}
}

// reset starts the tracker again from a stored state, forgetting every
// open message (a queue does it when it starts).
func (t *tracker) reset(pos uint64, restored map[uint64][]uint64) {
	t.mu.Lock()
	t.pos, t.restored, t.pending = pos, restored, nil
	t.mu.Unlock()
}

// open starts message seq, which the reader opens in order, and returns a
// function that reports whether its record idx was finished before a
// restart (and so is not to be sent).
func (t *tracker) open(seq uint64) (finished func(idx int) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := &trackEntry{seq: seq}
	bits := t.restored[seq] // read only by the closure; e.done is a copy
	if bits != nil {
		e.done = slices.Clone(bits)
		delete(t.restored, seq)
	}
	t.pending = append(t.pending, e)
	return func(idx int) bool { return bitSet(bits, idx) }
}

// add counts one more unfinished record of the message opened last.
func (t *tracker) add() {
	t.mu.Lock()
	t.pending[len(t.pending)-1].remaining++
	t.mu.Unlock()
}

// seal says the message opened last has no more records.
func (t *tracker) seal() {
	t.mu.Lock()
	t.pending[len(t.pending)-1].sealed = true
	t.advance()
	t.mu.Unlock()
}

// done finishes record idx of message seq.
func (t *tracker) done(seq uint64, idx int) {
	t.mu.Lock()
	for _, e := range t.pending {
		if e.seq == seq {
			e.remaining--
			e.done = setBit(e.done, idx)
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

// record names one record of a processed message.
type record struct {
	seq uint64
	idx int
}

// state returns the position and the encoded finished records of the
// messages after it, counting also the records in also: those whose state
// is written in the same transaction, and so finished once it commits.
func (t *tracker) state(also ...record) (uint64, []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b []byte
	for _, e := range t.pending {
		bits, copied := e.done, false
		for _, r := range also {
			if r.seq == e.seq {
				if !copied {
					bits, copied = slices.Clone(bits), true
				}
				bits = setBit(bits, r.idx)
			}
		}
		if len(bits) == 0 {
			continue
		}
		b = binary.AppendUvarint(b, e.seq)
		b = binary.AppendUvarint(b, uint64(len(bits)))
		for _, w := range bits {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
	}
	// Messages restored but not read again yet keep their records.
	for seq, bits := range t.restored {
		b = binary.AppendUvarint(b, seq)
		b = binary.AppendUvarint(b, uint64(len(bits)))
		for _, w := range bits {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
	}
	return t.pos, b
}

// decodeDone reads what state encoded.
func decodeDone(b []byte) (map[uint64][]uint64, error) {
	out := make(map[uint64][]uint64)
	for len(b) > 0 {
		seq, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("truncated sequence")
		}
		b = b[n:]
		words, n := binary.Uvarint(b)
		if n <= 0 || words > uint64(len(b))/8+1 {
			return nil, fmt.Errorf("message %d: bad bitmap length", seq)
		}
		b = b[n:]
		if uint64(len(b)) < 8*words {
			return nil, fmt.Errorf("message %d: truncated bitmap", seq)
		}
		bits := make([]uint64, words)
		for i := range bits {
			bits[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		b = b[8*words:]
		out[seq] = bits
	}
	return out, nil
}

// unfinished returns how many messages are open.
func (t *tracker) unfinished() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

func setBit(bits []uint64, i int) []uint64 {
	for len(bits) <= i/64 {
		bits = append(bits, 0)
	}
	bits[i/64] |= 1 << (i % 64)
	return bits
}

func bitSet(bits []uint64, i int) bool {
	return i/64 < len(bits) && bits[i/64]&(1<<(i%64)) != 0
}
