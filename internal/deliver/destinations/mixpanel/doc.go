// Package mixpanel is the Mixpanel destination: it sends Segment track,
// page and screen calls to Mixpanel's Ingestion API as events, identify
// calls as user profile updates and group calls as group profile updates.
// It does not send alias calls (see below), and it leaves retries,
// backoff and rate limiting to the delivery engine.
//
// Mixpanel's API reference: https://docs.mixpanel.com/reference/ingestion-api
//
// # Endpoints
//
//   - POST /import?strict=1[&project_id=…]: events, a JSON array, with
//     HTTP Basic credentials: a service account (with project_id), the
//     project's API secret, or the project token (each without
//     project_id, which would make Mixpanel expect a service account).
//   - POST /engage?verbose=1: user profile $set updates, each carrying the
//     project token.
//   - POST /groups?verbose=1: group profile $set updates, likewise.
//
// The base URL is https://api.mixpanel.com, api-eu or api-in by region, or
// the url setting.
//
// # Limits (Mixpanel's, as documented)
//
//   - 2000 events per /import request and 10 MB of uncompressed JSON; 2000
//     updates per /engage or /groups request. Each event or update under
//     1 MB (bigger ones are discarded here as invalid_event).
//   - About 2 GB of uncompressed JSON, or ~30k events, per minute per
//     project; above that Mixpanel answers 429 and asks for exponential
//     backoff (it documents no Retry-After, which is honoured if sent).
//   - $insert_id: at most 36 bytes of letters, digits and "-". Mixpanel
//     deduplicates on (event, time, distinct_id, $insert_id), which makes
//     resending a batch safe.
//
// # Mapping
//
// A track call becomes an event of its name; page and screen calls become
// "Loaded a Page" and "Loaded a Screen" (Segment's default for Mixpanel),
// or "Viewed <category> <name> Page"/"… Screen" when the
// consolidated_page_calls setting is false. Every event's properties are
// the call's properties over Mixpanel's default properties taken from the
// context (ip, $browser and $browser_version from the user agent, $os,
// $os_version, $manufacturer, $model, $device, $app_version_string,
// $app_build_number, $screen_width, $screen_height, $carrier, $wifi,
// mp_lib, $lib_version, $current_url, $referrer, utm_*), under the fields
// Mixpanel requires: time (the timestamp, in milliseconds), distinct_id
// (userId, else anonymousId), $insert_id (the messageId when it is of
// the form Mixpanel takes, a UUID say; else the first 36 hex digits of its
// SHA-256, the same on every attempt), $user_id (userId) and $device_id
// (anonymousId), which
// Simplified ID Merge uses to tie a user's anonymous and identified
// events together.
//
// An identify call becomes {"$token", "$distinct_id", "$set": traits,
// "$ip"}: email, phone, name, firstName, lastName, avatar and createdAt go
// to Mixpanel's reserved $email, $phone, $name, $first_name, $last_name,
// $avatar and $created; $ip is context.ip, or "0" so that Mixpanel does not
// place the user where Conflux runs; context.active false sets
// $ignore_time. A group call becomes {"$token", "$group_key": group_key
// setting, "$group_id": groupId, "$set": traits} (traits mapped as for
// identify); without a group_key it is discarded as unsupported.
//
// Alias calls are discarded (unsupported_event_type): $create_alias only
// works in projects on Mixpanel's legacy identity systems, and with
// Simplified ID Merge the $device_id/$user_id pair on events does its work.
//
// # Answers
//
// 2xx delivers. A strict /import 400 is a partial success: the events in
// its failed_records are discarded (http_400, with Mixpanel's message) and
// the others delivered; their Result keeps the status, 400. When the
// answer does not account for every event (its body cut by the recording
// bound, or num_records_imported short) the events it does not name are
// retried instead, which their $insert_id makes safe. 401 and 403 discard
// the request's events (the credentials are wrong). 413 halves the
// request and sends the halves, down to a single event, which is then
// discarded. 429, 5xx, timeouts and connection errors retry, with
// Retry-After when given; after one, the rest of the Send is not sent but
// retried with it. /engage and /groups answer 200 even when they refuse:
// a body of status 0 discards the request's updates
// (destination_error).
package mixpanel
