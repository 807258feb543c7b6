// Package amplitude is the Amplitude destination: it turns Segment spec
// events into Amplitude events and uploads them in batches to Amplitude's
// HTTP V2 API (https://api2.amplitude.com/2/httpapi) or its Batch Event
// Upload API (https://api2.amplitude.com/batch), in the US or the EU
// (api.eu.amplitude.com). Both APIs take the same request
// ({"api_key", "events", "options"}) and answer in the same shapes.
//
// Vendor documentation:
//   - https://amplitude.com/docs/apis/analytics/http-v2
//   - https://amplitude.com/docs/apis/analytics/batch-event-upload
//   - https://amplitude.com/docs/apis/analytics/http-api-batching-retries
//
// The vendor's limits, as documented, and what this package does about them:
//
//   - Request size: HTTP V2 takes at most 2000 events and 1 MB per request,
//     the Batch API 20 MB; either answers 413 beyond that. A batch is split
//     in halves before sending when its body is over the limit, and again
//     whenever Amplitude answers 413, down to single events; a single event
//     that is still too large is discarded.
//   - IDs: user_id and device_id must be at least 5 characters long
//     (options.min_id_length changes that). Amplitude drops an ID that is
//     too short; this package drops it first, and discards an event left
//     with neither.
//   - Throttling: HTTP V2 throttles a user or device above 30 events per
//     second (the Batch API above 1000) and a user or device over its daily
//     quota (500,000 events in a rolling 24 hours). The answer is 429, the
//     whole request is rejected, and throttled_events lists the events
//     whose user or device was throttled. Those events are retried after
//     30 s (after an hour for a daily quota, which Amplitude re-evaluates in
//     one-hour steps); the others of the batch are sent again at once.
//   - Invalid events: a 400 that names events (events_with_invalid_fields,
//     events_with_missing_fields, events_with_invalid_id_lengths,
//     silenced_events) rejects the whole request; the named events are
//     discarded and the others sent again at once, as Amplitude advises. A
//     400 about the request itself (an invalid API key, a missing field)
//     discards the batch.
//   - Server errors: 500, 502, 504 and 503 are retried; every event carries
//     insert_id (the Segment messageId), on which Amplitude drops repeats
//     for 7 days, so a retry of a request that did land adds nothing.
//
// The package keeps no state between calls: a destination holds only its
// settings and HTTP client, and Send may be called from many goroutines at
// once. It does not implement Segment's alias (Amplitude's usermap API
// needs the Portfolio add-on) nor user deletion (which is what a project's
// secret key is for).
package amplitude
