// Package process is the processing stage: it reads the ingest log, routes
// each event to its user's partition, drops duplicates by messageId, applies
// each source's tracking plan and transformations, and writes what is left
// to the processed log. Everything it removes is counted with its reason.
//
// # Exactly once into processed
//
// The stage works in groups: a run of ingest messages (up to
// [Options.MaxGroupBytes]) is split by partition, the partitions process
// their records in parallel against their own dedup index, and the
// results become one processed message. Its headers name the last ingest
// sequence the group covers (Conflux-Ingest-Seq) and the partitions it
// speaks for (Conflux-Partitions). Only after the log acknowledges it does
// each partition commit the group's message ids, with that sequence as its
// checkpoint, in one synced write to its index; the next group starts after
// that. So at most the last processed message can lack its index commit,
// and New repairs exactly that case before reading on (the output is the
// write-ahead log, the index a checkpoint: Segment's design, spec §3).
// Reading resumes after the lowest partition checkpoint; a record whose
// partition's checkpoint already covers its sequence is skipped.
//
// A group changes nothing before its output is acknowledged, so a crash at
// any point replays it with the same decisions: no event is lost, and
// none reaches processed twice.
//
// # What it deliberately does not do
//
// It does not know plans, transformations or identity: a [Pipeline] given
// by the composition root decides what becomes of a deduplicated event. It
// does not deliver anything; the delivery stage reads processed.
//
// docs/design/processing.md has the design and docs/format/envelope.md
// the message formats.
package process
