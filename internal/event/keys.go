package event

import (
	"errors"
	"time"
)

// Keys are the fields of a stored (normalized) event that the stages after
// collection route and deduplicate by.
type Keys struct {
	MessageID   []byte // unescaped; aliases the record unless it had escapes
	UserID      []byte
	AnonymousID []byte
	ReceivedAt  time.Time
	// Type is the event type, and Integrations the raw JSON of the
	// integrations object (nil when absent), for the delivery stage.
	Type         []byte
	Integrations []byte
	// Event is a track's event name, Name a page's or screen's name.
	Event, Name []byte
}

// ErrNoMessageID means a record lacks the messageId every stored event has:
// the record is corrupt.
var ErrNoMessageID = errors.New("record has no messageId")

// PeekKeys reads Keys from one record's JSON, validating the JSON as it
// goes, without decoding the rest.
func PeekKeys(rec []byte) (Keys, error) {
	var k Keys
	i := skipSpace(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return k, errAt(i, "record is not a JSON object")
	}
	var recv []byte
	end, err := scanObject(rec, i, 0, func(keyTok []byte, _ int, esc bool, vs, ve int) error {
		if rec[vs] != '"' {
			if rec[vs] == '{' && string(keyBytes(keyTok, esc)) == "integrations" {
				k.Integrations = rec[vs:ve]
			}
			return nil
		}
		switch string(keyBytes(keyTok, esc)) {
		case "type":
			k.Type = idBytes(rec, span{vs, ve})
		case "event":
			k.Event = idBytes(rec, span{vs, ve})
		case "name":
			k.Name = idBytes(rec, span{vs, ve})
		case "messageId":
			k.MessageID = idBytes(rec, span{vs, ve})
		case "userId":
			k.UserID = idBytes(rec, span{vs, ve})
		case "anonymousId":
			k.AnonymousID = idBytes(rec, span{vs, ve})
		case "receivedAt":
			recv = rec[vs:ve]
		}
		return nil
	})
	if err != nil {
		return k, err
	}
	if skipSpace(rec, end) != len(rec) {
		return k, errAt(end, "unexpected data after the record's JSON object")
	}
	if len(k.MessageID) == 0 {
		return k, ErrNoMessageID
	}
	if recv != nil {
		if t, err := parseTime(recv); err == nil {
			k.ReceivedAt = t
		}
	}
	return k, nil
}
