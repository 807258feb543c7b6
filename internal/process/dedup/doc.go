// Package dedup is the processing stage's message-id index: one per
// processing partition, on disk in Pebble, it answers whether an event's
// messageId was already seen within the dedup window (default 30 days),
// and records the ids of each processed group together with the ingest-log
// checkpoint that group reaches.
//
// # Buckets
//
// Time is cut into buckets of BucketSpan (default 24h, aligned to the Unix
// epoch, so UTC days). An id is committed into the bucket of its event's
// receivedAt, and a whole bucket expires once all of its span is older than
// the window: an id is remembered for at least Window and at most
// Window+BucketSpan. Ids never expire one by one.
//
// All buckets live in one Pebble store per partition, their keys prefixed
// by the bucket number; [Index.Expire] drops every expired bucket with one
// range deletion, and Pebble then deletes the tables it covers whole, in
// delete-only compactions, without rewriting them (once the memtable that
// holds the deletion is flushed, within 10 s; the few tables that straddle
// a bucket boundary go with later compactions). The alternative, one
// Pebble store per bucket dropped as a directory, frees disk at once but
// was rejected: a Commit whose ids straddle a bucket boundary (a group
// read at midnight) would need two stores, two synced writes and a
// protocol to make them and the checkpoint agree after a crash, where one
// store makes the ids of any buckets and the checkpoint one atomic, synced
// batch; one store also has one WAL to sync per Commit, one set of
// memtables whatever the window, and a handful of open files.
//
// # Keys
//
// An id is stored as the first 16 bytes of the SHA-256 of the messageId,
// so a long id costs what a short one does. The Pebble keys, all integers
// big-endian:
//
//	"k" bucket(8) hash(16)  an id; empty value
//	"b" bucket(8)           a bucket's record: lastCommit(8) keys(8)
//	"c"                     checkpoint(8) lastCommit(8)
//	"m"                     format version(4) BucketSpan in ns(8)
//
// bucket is the bucket's start in Unix nanoseconds divided by BucketSpan.
// lastCommit numbers Commits, counting up for the life of the index and
// never reused; a bucket's record names the last Commit that wrote to it.
// Pebble keeps 10-bit Bloom filters in its tables; blocks are not
// compressed, since the keys are hashes.
//
// # Filters
//
// Each live bucket has an in-memory split-block Bloom filter of 16 bits a
// key, sized for ExpectedKeysPerBucket keys: 2 MiB per bucket for the
// default 1<<20, so at most (⌈Window/BucketSpan⌉ + 1) × 2 bytes ×
// ExpectedKeysPerBucket in all, however many ids arrive (a bucket with more
// keys than expected keeps its size; its false-positive rate rises).
// [Index.Contains] tests the filters of the live buckets, newest first,
// and reads Pebble only for a bucket whose filter says maybe: a new id
// costs one cache miss per bucket, overlapped (a first pass loads one word
// of each bucket's block before any is tested), and at capacity a Pebble
// lookup for about 0.13% of the buckets (TestFilterFalsePositiveRate).
// The block cache is the other configured memory; partitions can share one.
//
// A bucket's filter is saved to Dir/filters/<bucket in hex>.filter (format
// in filter.go) when the bucket is over (by the Commit that first finds
// the clock in a later bucket, or Expire) and on Close. The file records
// the lastCommit it covers; Open uses it only if that equals the bucket's
// record in Pebble and its checksum holds, and otherwise rebuilds the
// filter by scanning the bucket's keys. The files are a cache: a missing,
// torn or stale one costs a scan, never a lost id, and since commit
// numbers are never reused, a leftover file cannot match a later bucket.
//
// # Crash safety
//
// [Index.Commit] writes the ids, the records of the buckets they touch and
// the checkpoint in one Pebble batch with a synced WAL write, so after a
// crash the checkpoint and the ids agree: either the whole Commit is there
// or none of it. The processing stage publishes a group to `processed`
// before committing its ids, and after a crash re-commits the ids of the
// one group that may lack them (docs/design/processing.md); committing an
// id twice is harmless.
//
// # Concurrency
//
// Contains takes no lock on its usual path: it reads an immutable list of
// the buckets published through an atomic pointer, and filter words with
// atomic loads, while the one committing goroutine sets them with atomic
// ors. Commit, Expire, Stats and Close serialize on Index.mu. Contains
// holds Index.dbMu for reading while it reads Pebble, so that Close cannot
// close the store under it. Lock order: mu before dbMu.
//
// # What it does not do
//
//   - It does not catch a duplicate within one Commit's ids, nor between
//     ids not yet committed: the stage keeps an in-memory set of the ids of
//     the group it is building.
//   - It compares messageIds only, never payloads, and only within its
//     partition: a messageId reused by another user, whose events go to
//     another partition, is not a duplicate.
//   - It does not rebuild itself from the `processed` stream after a
//     hand-over or a lost disk; the stage does that by committing the ids
//     it reads back.
//   - It bounds disk by time, not by size: a flood of distinct ids costs
//     disk for one window.
//   - It exports no metrics itself; [Index.Stats] gives the figures for the
//     stage to export.
package dedup
