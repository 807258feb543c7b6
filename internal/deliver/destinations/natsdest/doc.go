// Package natsdest is the "nats" destination: it publishes every event as
// one NATS message, either with core NATS or through JetStream
// (https://docs.nats.io/nats-concepts/jetstream), so that other systems can
// consume Conflux's events from a NATS server or cluster that they own.
//
// # Messages
//
// The message body is the event's JSON, unchanged. Its headers are
//
//	Nats-Msg-Id     the event's messageId (JetStream drops a repeat within
//	                the stream's duplicate window, 2 minutes by default)
//	Conflux-Source  the source id
//	Conflux-Type    the Segment event type: track, identify, …
//
// The subject comes from the subject setting, whose {{source}} and {{type}}
// placeholders are replaced by the source id and the event type. Each
// replacement is one subject token: a character other than A–Z, a–z, 0–9,
// '_' and '-' becomes '_', and an empty value becomes "_", so that a value
// can neither add tokens nor a wildcard.
//
// # Delivery
//
// With jetstream: false (the default) a batch is published with core NATS
// and then flushed: Delivered means the server has received every message
// (a PING sent after them was answered). Core NATS does not store messages:
// a subscriber that is not connected at that moment never sees them. With
// jetstream: true every message is published asynchronously and Delivered
// means its stream acknowledged it (PubAck), so it is as durable as the
// stream; a repeat of a messageId inside the duplicate window is
// acknowledged without being stored twice.
//
// Outcomes per event:
//   - Retry, reason "connection": not connected (the client reconnects in
//     the background, for ever), the connection dropped before the ack, or a
//     JetStream stream exists for the subject but did not answer.
//   - Retry, reason "timeout": no flush or ack within the timeout setting.
//   - Retry, reason "destination_error": JetStream answered a 5xx-class
//     error that may pass (stream full with discard: new, no quorum, …).
//   - Discard, reason "invalid_event": the message is larger than the
//     server's max_payload.
//   - Discard, reason "destination_error": a JetStream error that will not
//     pass (no stream captures the subject, message larger than the stream's
//     max_msg_size, other 4xx-class API errors), the server refused the
//     credentials, or the user may not publish to the subject (a permissions
//     violation the server reported during the Send).
//
// Delivery is at least once: a message whose ack or flush was lost is sent
// again. With JetStream the Nats-Msg-Id header removes such repeats inside
// the duplicate window; core NATS subscribers should drop repeats by that
// header themselves.
//
// # Limits
//
// A NATS server refuses a message larger than its max_payload (1 MB by
// default, 64 MB at most). A Send carries at most [MaxBatch] events, all
// published before any ack is awaited. Send may be called concurrently; the
// destination holds one connection, shared by all calls.
package natsdest
