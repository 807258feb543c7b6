package deliver

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/confluxcdp/conflux/internal/config"
)

// shard is one part of a destination's queue, k of n (delivery.shards):
// every record of the processed stream belongs to one shard, which alone
// sends it, so that the shards can run on different nodes. A queue of
// one shard is the destination's whole queue.
type shard struct{ k, n int }

// shardCount is how many shards a destination's queue has.
func shardCount(d *config.Destination) int { return max(1, d.Delivery.Shards) }

// shardsOf returns the shards of a destination's queue.
func shardsOf(d *config.Destination) []shard {
	n := shardCount(d)
	out := make([]shard, n)
	for k := range out {
		out[k] = shard{k, n}
	}
	return out
}

// key names the shard's queue, position and lease: the destination's id
// for a queue of one shard, "<id>/<k>-of-<n>" otherwise.
func (s shard) key(dest string) string {
	if s.n <= 1 {
		return dest
	}
	return dest + "/" + strconv.Itoa(s.k) + "-of-" + strconv.Itoa(s.n)
}

// parseKey reads a key made by [shard.key].
func parseKey(key string) (dest string, s shard, err error) {
	dest, part, sharded := strings.Cut(key, "/")
	if !sharded {
		return dest, shard{0, 1}, nil
	}
	ks, ns, ok := strings.Cut(part, "-of-")
	k, errK := strconv.Atoi(ks)
	n, errN := strconv.Atoi(ns)
	if !ok || errK != nil || errN != nil || n < 2 || k < 0 || k >= n {
		return dest, s, fmt.Errorf("delivery queue key %q: want <destination>/<k>-of-<n>", key)
	}
	return dest, shard{k, n}, nil
}

// has reports whether record idx of processed message seq is the shard's.
// Records, not messages, are spread: a message holds the records of many
// users and sources, and its records go to every shard alike.
func (s shard) has(seq uint64, idx int) bool {
	if s.n <= 1 {
		return true
	}
	return int(spread(seq*0x9e3779b97f4a7c15+uint64(idx))%uint64(s.n)) == s.k
}

// spread is SplitMix64's finaliser: neighbouring records land on
// unrelated shards.
func spread(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// fnvHash is FNV-1a of s.
func fnvHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// part is a share of a destination-wide limit for shard k of n: the
// shards' parts add up to total, and none is below one.
func (s shard) part(total int) int {
	p := total / s.n
	if s.k < total%s.n {
		p++
	}
	return max(1, p)
}

// storedPosition is one stored position of a destination's queue.
type storedPosition struct {
	shard shard
	seq   uint64
	done  map[uint64][]uint64
}

// last is the highest sequence the position says anything about.
func (p *storedPosition) last() uint64 {
	last := p.seq
	for seq := range p.done {
		last = max(last, seq)
	}
	return last
}

// inherited is what a destination's queue of another shard count
// finished: when delivery.shards changes, the new shards start from the
// lowest of the old positions and skip what the old shards had finished,
// so that a change of shard count sends nothing twice. Only one shard
// count runs at a time (see [Engine.layoutFree]), and what any stored
// position says is finished stays finished, so a record any of them
// finished is finished.
type inherited struct {
	from  []storedPosition
	until uint64 // past it, nothing is inherited
}

func newInherited(rows []storedPosition, n int) *inherited {
	in := &inherited{}
	for _, r := range rows {
		if r.shard.n != n {
			in.from = append(in.from, r)
			in.until = max(in.until, r.last())
		}
	}
	return in
}

// finished reports whether another shard count finished record idx of
// message seq.
func (in *inherited) finished(seq uint64, idx int) bool {
	if seq > in.until {
		return false
	}
	for i := range in.from {
		r := &in.from[i]
		if r.shard.has(seq, idx) && (seq <= r.seq || bitSet(r.done[seq], idx)) {
			return true
		}
	}
	return false
}
