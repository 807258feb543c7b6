// Package deliver is Conflux's Centrifuge: it delivers the events of the
// processed stream to destinations, each through its own queue with its
// own position, concurrency limit, rate limit, retry schedule and circuit
// breaker, so that one failing or slow destination never slows another.
//
// A destination type (webhook, amplitude, …) is a small package under
// destinations/ that exports a [Type]; the server registers them in a
// [Registry]. The engine does the rest: routing by source and the
// integrations object, the destination's transformations and filters,
// batching, retries with backoff up to a maximum age, the dead-letter
// store and replay.
package deliver
