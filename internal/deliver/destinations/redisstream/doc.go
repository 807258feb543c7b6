// Package redisstream is the "redis_stream" destination: it appends every
// event to a Redis stream with XADD (https://redis.io/docs/latest/commands/xadd/),
// so that other systems can read Conflux's events with XREAD or with
// consumer groups (XREADGROUP).
//
// # Entries
//
// Each event is one entry, with an id that Redis assigns ("*"), and four
// fields:
//
//	message_id  the event's messageId
//	source_id   the source id
//	type        the Segment event type: track, identify, …
//	event       the event's JSON, unchanged
//
// The stream key comes from the stream setting, whose {{source}} and
// {{type}} placeholders are replaced by the source id and the event type
// (Redis keys may hold any bytes, so the values are used as they are).
// With max_len set, every XADD trims the stream to about that many entries
// (MAXLEN ~ n: Redis trims whole internal nodes, so the stream may keep a
// little more, and trimming costs almost nothing).
//
// # Delivery
//
// A batch is sent as one pipeline: one round trip, one XADD per event, and
// one Result per event from its own reply, so that one failing XADD does
// not fail the others. Delivered means Redis appended the entry; it is as
// durable as the server's persistence settings (appendfsync) make it.
//
// Outcomes per event:
//   - Retry, reason "connection" or "timeout": the connection was refused,
//     dropped, or did not answer within the timeout setting.
//   - Retry, reason "destination_error": an error Redis documents as
//     passing: LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY
//     (a failover), NOREPLICAS, OOM (maxmemory reached) and the
//     maximum-clients error.
//   - Discard, reason "destination_error": any other error reply, with its
//     text: WRONGTYPE (the key holds another type), NOAUTH, WRONGPASS,
//     NOPERM (an ACL forbids XADD on the key), a syntax error, ….
//
// # Repeats
//
// Delivery is at least once, and XADD cannot deduplicate: when a reply is
// lost (a timeout, a dropped connection) after Redis appended the entry,
// the retry appends it again. Readers drop repeats by the message_id field.
// Conflux deliberately adds no write-side guard, such as a Lua script that
// sets a "seen" key with SET NX before the XADD: readers of a stream must
// drop repeats anyway, because a consumer group delivers an entry again
// when a consumer dies before XACK; the guard would double the writes and
// keep one key per event for its window; and in Redis Cluster the guard
// key and the stream would have to share a hash slot. Redis 8.6 can
// deduplicate on the server (XADD … IDMP); a setting can use it once a
// server of that version is available to test against.
//
// Send may be called concurrently; the destination holds one connection
// pool, shared by all calls. The client does not retry by itself (the
// engine owns retries), so a Send makes exactly one attempt.
package redisstream
