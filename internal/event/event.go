// Package event holds the Segment Spec message as Conflux receives it: it
// parses request bodies of the Tracking API (single calls and batches),
// validates each message, normalizes it the way Segment does (messageId,
// receivedAt, clock-skew-corrected timestamp, batch context merged in,
// context.ip, writeKey removed) and frames the results as log records.
//
// It works on raw bytes: the body is validated in one pass that also locates
// the fields it needs, and each event is rewritten by splicing those fields
// rather than decoding and re-encoding the whole message, which keeps every
// property the client sent byte for byte. It deliberately knows nothing of
// HTTP, write keys or the log.
package event

import "fmt"

// Message types of the Segment Spec.
const (
	Identify = "identify"
	Track    = "track"
	Page     = "page"
	Screen   = "screen"
	Group    = "group"
	Alias    = "alias"
)

// TypeFromPath maps the last segment of a Tracking API path — the long
// names and analytics-next's one-letter forms — to a message type.
func TypeFromPath(seg string) (string, bool) {
	switch seg {
	case "identify", "i":
		return Identify, true
	case "track", "t":
		return Track, true
	case "page", "p":
		return Page, true
	case "screen", "s":
		return Screen, true
	case "group", "g":
		return Group, true
	case "alias", "a":
		return Alias, true
	}
	return "", false
}

// messageType returns the type constant spelled by t, or "".
func messageType(t []byte) string {
	for _, c := range [...]string{Track, Identify, Page, Screen, Group, Alias} {
		if string(t) == c {
			return c
		}
	}
	return ""
}

// Limits bound what one request may carry. The zero value is not useful;
// start from [DefaultLimits].
type Limits struct {
	// MaxEventBytes bounds a single-event request body, and each event of a
	// batch. Default: 32 KiB (Segment documents 32 KB; SDKs use 32,000 B).
	MaxEventBytes int
	// MaxBatchBytes bounds a batch request body, after decompression.
	// Default: 500 KiB (Segment documents 500 KB; analytics-go uses 500,000 B).
	MaxBatchBytes int
	// MaxBatchEvents bounds the number of events in one batch. Default: 2,500.
	MaxBatchEvents int
	// MaxMessageIDLen bounds messageId. Default: 100 characters.
	MaxMessageIDLen int
}

// DefaultLimits returns Segment's documented limits.
func DefaultLimits() Limits {
	return Limits{
		MaxEventBytes:   32 << 10,
		MaxBatchBytes:   500 << 10,
		MaxBatchEvents:  2500,
		MaxMessageIDLen: 100,
	}
}

// Error is a problem with a whole request: the request is refused and
// nothing of it is kept. Code is a stable, machine-readable name.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Codes of request errors.
const (
	CodeInvalidJSON   = "invalid_json"
	CodeTooLarge      = "payload_too_large"
	CodeTooManyEvents = "too_many_events"
	CodeInvalidBody   = "invalid_body"
)

func reqErr(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Rejection is one event of a request that was not accepted, and why. The
// rest of its batch is accepted regardless.
type Rejection struct {
	// Index is the event's position in the batch (0 for a single call).
	Index int `json:"index"`
	// Reason is a stable code, e.g. "no_user_anon_id"; see the Reason* constants.
	Reason string `json:"reason"`
	// Message says what is wrong, for a person.
	Message string `json:"message"`
}

// Rejection reasons. Where Segment names one, Conflux uses Segment's name.
const (
	ReasonInvalidEvent     = "invalid_event"       // not a JSON object
	ReasonInvalidType      = "invalid_type"        // type missing or unknown
	ReasonNoUserAnonID     = "no_user_anon_id"     // neither userId nor anonymousId
	ReasonMissingEvent     = "missing_event"       // track without event
	ReasonMissingGroupID   = "missing_group_id"    // group without groupId
	ReasonMissingPrevious  = "missing_previous_id" // alias without previousId
	ReasonMissingUserID    = "missing_user_id"     // alias without userId
	ReasonInvalidField     = "invalid_field"       // an id or name of the wrong JSON type
	ReasonInvalidTimestamp = "invalid_timestamp"   // timestamp, originalTimestamp or sentAt not ISO-8601
	ReasonMessageIDTooLong = "message_id_too_long"
	ReasonEventTooLarge    = "event_too_large"
	// ReasonSuppressed: the userId is suppressed by a regulation. The client
	// is not told (Segment answers as if the event were accepted).
	ReasonSuppressed = "suppressed"
)
