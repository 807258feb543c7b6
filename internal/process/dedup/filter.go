package dedup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"sync/atomic"
)

// filterBitsPerKey is the size of a bucket's in-memory filter per expected
// key. With the split-block layout below, 16 bits a key give about 0.13%
// false positives at capacity, 0.9% at 1.5 times and 3.3% at twice capacity
// (measured in TestFilterFalsePositiveRate). Contains probes every live
// bucket's filter, so the rate counts 31 times for a 30-day window, and
// each false positive costs a Pebble lookup: over 50 million ids,
// `conflux bench dedup` made about 215k checks/s at 12 bits (0.45%) and
// 310k at 16 (docs/benchmarks.md).
const filterBitsPerKey = 16

// filterBlockWords is the number of 32-bit words in one filter block: 256
// bits, half a cache line, so that a probe touches one line of memory.
const filterBlockWords = 8

// filter is a split-block Bloom filter (the layout of Parquet's and Impala's
// "SBBF"): the key picks one 256-bit block, and sets or tests one bit in
// each of the block's eight 32-bit words. A probe costs one cache miss,
// where a classic Bloom filter of the same size costs about seven.
//
// Keys are the 16-byte hashes of ids, already uniform, so the filter uses
// their bytes directly: the first eight choose the block, the next four the
// bits.
//
// A filter may be read by any number of goroutines while one adds to it:
// words are read and set with atomic operations (on amd64 and arm64 an
// atomic load is a plain load). Adds are serialized by Index.mu.
type filter struct {
	words []uint32 // len is a multiple of filterBlockWords
}

// newFilter returns a filter sized for capacity keys at filterBitsPerKey.
func newFilter(capacity int64) *filter {
	return &filter{words: make([]uint32, newFilterWords(capacity))}
}

// newFilterWords is the number of words of a filter for capacity keys.
func newFilterWords(capacity int64) int {
	capacity = max(capacity, 1)
	return int((capacity*filterBitsPerKey+255)/256) * filterBlockWords
}

// filterSalts are the odd multipliers that spread one 32-bit hash into the
// eight bit positions of a block (the constants of the Parquet SBBF).
var filterSalts = [filterBlockWords]uint32{
	0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d,
	0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
}

// block returns the words of the block that k maps to, and the 32 bits of
// k that choose the bits within it.
func (f *filter) block(k *key) ([]uint32, uint32) {
	nblocks := uint64(len(f.words) / filterBlockWords)
	i, _ := bits.Mul64(binary.LittleEndian.Uint64(k[0:8]), nblocks)
	b := f.words[i*filterBlockWords : (i+1)*filterBlockWords : (i+1)*filterBlockWords]
	return b, binary.LittleEndian.Uint32(k[8:12])
}

// add records k.
func (f *filter) add(k *key) {
	b, x := f.block(k)
	for i := range filterBlockWords {
		atomic.OrUint32(&b[i], 1<<((x*filterSalts[i])>>27))
	}
}

// mayContain reports false if k was certainly never added.
func (f *filter) mayContain(k *key) bool {
	b, x := f.block(k)
	for i := range filterBlockWords {
		if atomic.LoadUint32(&b[i])&(1<<((x*filterSalts[i])>>27)) == 0 {
			return false
		}
	}
	return true
}

// firstBit is 1 if the first of k's eight bits is set, else 0: a cheap
// first test, without a branch.
func (f *filter) firstBit(k *key) uint64 {
	b, x := f.block(k)
	return uint64(atomic.LoadUint32(&b[0])>>((x*filterSalts[0])>>27)) & 1
}

// bytes is the filter's size in memory.
func (f *filter) bytes() int64 { return int64(len(f.words)) * 4 }

// The filter file saves a bucket's filter so that opening the index need not
// rescan the bucket. It is a cache of the bucket's keys, never the truth:
//
//	magic   [8]byte  "CFXDDUP1"
//	seq     uint64   the bucket's commit sequence the filter covers
//	keys    uint64   keys added (approximate)
//	nwords  uint64
//	words   [nwords]uint32
//	crc     uint32   CRC-32C of everything before it
//
// all little-endian. The file is used only if its CRC matches and its seq
// equals the sequence stored in the bucket's database, so a torn, stale or
// missing file costs a rescan, never a lost id.
const filterMagic = "CFXDDUP1"

// errFilterStale says a filter file does not match its bucket's database.
var errFilterStale = errors.New("filter file is stale or damaged")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeFilterFile saves f to path through a temporary file and a rename, so
// that a crash leaves the old file, the new one, or none.
func writeFilterFile(path string, f *filter, seq, keys uint64) (err error) {
	tmp := path + ".tmp"
	file, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("creating filter file %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = file.Close()
			_ = os.Remove(tmp)
		}
	}()
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(file, crc), 1<<16)
	var hdr [32]byte
	copy(hdr[:8], filterMagic)
	binary.LittleEndian.PutUint64(hdr[8:], seq)
	binary.LittleEndian.PutUint64(hdr[16:], keys)
	binary.LittleEndian.PutUint64(hdr[24:], uint64(len(f.words)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("writing filter file %s: %w", tmp, err)
	}
	var buf [4]byte
	for i := range f.words {
		binary.LittleEndian.PutUint32(buf[:], atomic.LoadUint32(&f.words[i]))
		if _, err := w.Write(buf[:]); err != nil {
			return fmt.Errorf("writing filter file %s: %w", tmp, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing filter file %s: %w", tmp, err)
	}
	binary.LittleEndian.PutUint32(buf[:], crc.Sum32())
	if _, err := file.Write(buf[:]); err != nil {
		return fmt.Errorf("writing filter file %s: %w", tmp, err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("closing filter file %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming filter file %s: %w", tmp, err)
	}
	return nil
}

// readFilterFile loads the filter saved at path if it covers exactly the
// commit sequence seq. It returns errFilterStale (wrapped) when the file is
// damaged or covers another sequence, and an error satisfying
// errors.Is(err, fs.ErrNotExist) when there is none.
func readFilterFile(path string, seq uint64) (*filter, uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("reading filter file %s: %w", path, err)
	}
	if len(data) < 36 || string(data[:8]) != filterMagic {
		return nil, 0, fmt.Errorf("reading filter file %s: bad header: %w", path, errFilterStale)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, 0, fmt.Errorf("reading filter file %s: checksum mismatch: %w", path, errFilterStale)
	}
	fileSeq := binary.LittleEndian.Uint64(body[8:])
	keys := binary.LittleEndian.Uint64(body[16:])
	nwords := binary.LittleEndian.Uint64(body[24:])
	if fileSeq != seq {
		return nil, 0, fmt.Errorf("reading filter file %s: covers commit %d, bucket is at %d: %w", path, fileSeq, seq, errFilterStale)
	}
	if nwords == 0 || nwords%filterBlockWords != 0 || uint64(len(body)-32) != nwords*4 {
		return nil, 0, fmt.Errorf("reading filter file %s: bad size: %w", path, errFilterStale)
	}
	f := &filter{words: make([]uint32, nwords)}
	for i := range f.words {
		f.words[i] = binary.LittleEndian.Uint32(body[32+4*i:])
	}
	return f, keys, nil
}
