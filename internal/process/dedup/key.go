package dedup

import (
	"crypto/sha256"
	"encoding/binary"
)

// key is the 16-byte hash of a messageId: the first half of its SHA-256.
// Ids are hashed so that a long id costs the same as a short one, and so
// that the filters and Pebble's tables see uniformly spread keys.
type key [16]byte

// hashID returns the key of id.
func hashID(id []byte) key {
	sum := sha256.Sum256(id)
	return key(sum[:16])
}

// The Pebble key space (see doc.go):
//
//	"b" bucket(8)           bucket record: lastCommit(8) keys(8)
//	"c"                     checkpoint record: checkpoint(8) lastCommit(8)
//	"k" bucket(8) hash(16)  an id; empty value
//	"m"                     format record: version(4) bucketSpan(8)
//
// All integers are big-endian, so that a bucket's keys are contiguous and
// buckets sort by time.
const (
	prefixBucket     = 'b'
	prefixCheckpoint = 'c'
	prefixID         = 'k'
	prefixFormat     = 'm'

	idKeyLen     = 1 + 8 + 16
	bucketKeyLen = 1 + 8

	// formatVersion is the version of the key layout written in the
	// format record.
	formatVersion = 1
)

var (
	checkpointKey = []byte{prefixCheckpoint}
	formatKey     = []byte{prefixFormat}
)

// idKey writes the Pebble key of k in bucket num into buf and returns it.
func idKey(buf *[idKeyLen]byte, num uint64, k *key) []byte {
	buf[0] = prefixID
	binary.BigEndian.PutUint64(buf[1:9], num)
	copy(buf[9:], k[:])
	return buf[:]
}

// bucketPrefix returns the first key of bucket num's ids, or with
// prefixBucket, the key of its bucket record.
func bucketPrefix(prefix byte, num uint64) []byte {
	var b [bucketKeyLen]byte
	b[0] = prefix
	binary.BigEndian.PutUint64(b[1:], num)
	return b[:]
}

// bucketRecord is the value stored under a bucket's record key.
type bucketRecord struct {
	lastCommit uint64 // the commit number of the last Commit that wrote to the bucket
	keys       uint64 // ids written (approximate: an id committed twice counts twice)
}

func (r bucketRecord) encode() []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:], r.lastCommit)
	binary.BigEndian.PutUint64(b[8:], r.keys)
	return b[:]
}

func decodeBucketRecord(v []byte) (bucketRecord, bool) {
	if len(v) != 16 {
		return bucketRecord{}, false
	}
	return bucketRecord{
		lastCommit: binary.BigEndian.Uint64(v[0:]),
		keys:       binary.BigEndian.Uint64(v[8:]),
	}, true
}

// checkpointRecord is the value stored under checkpointKey.
type checkpointRecord struct {
	checkpoint uint64 // the caller's checkpoint, an ingest-log sequence
	lastCommit uint64 // number of the last Commit; never reused
}

func (r checkpointRecord) encode() []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:], r.checkpoint)
	binary.BigEndian.PutUint64(b[8:], r.lastCommit)
	return b[:]
}

func decodeCheckpointRecord(v []byte) (checkpointRecord, bool) {
	if len(v) != 16 {
		return checkpointRecord{}, false
	}
	return checkpointRecord{
		checkpoint: binary.BigEndian.Uint64(v[0:]),
		lastCommit: binary.BigEndian.Uint64(v[8:]),
	}, true
}
