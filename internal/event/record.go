package event

import (
	"encoding/binary"
	"fmt"
	"iter"
)

// A log message of the ingest stream is a sequence of records, one per
// event, each:
//
//	uint32 big-endian n | n bytes: uint8 len(sourceID) | sourceID | event JSON
//
// The framing is binary so that events need no escaping and a reader can
// walk a message without parsing JSON. docs/format/envelope.md describes it.

// Record is one event as stored in the log: the normalized JSON and the
// source it came from.
type Record struct {
	SourceID string
	JSON     []byte
}

// AppendRecord appends one record to dst. It is for producers other than
// the Tracking API (tests, replays); the API builds records in place.
func AppendRecord(dst []byte, sourceID string, json []byte) []byte {
	mark := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(len(sourceID)))
	dst = append(dst, sourceID...)
	dst = append(dst, json...)
	putRecordLen(dst, mark)
	return dst
}

// RecordSize is the number of bytes AppendRecord adds for one record.
func RecordSize(sourceID string, json []byte) int { return 5 + len(sourceID) + len(json) }

func putRecordLen(dst []byte, mark int) {
	binary.BigEndian.PutUint32(dst[mark:], uint32(len(dst)-mark-4))
}

// Records iterates the records of a log message. A malformed message yields
// one error and stops.
func Records(msg []byte) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for off := 0; off < len(msg); {
			if len(msg)-off < 5 {
				yield(Record{}, fmt.Errorf("record at byte %d: truncated header", off))
				return
			}
			n := int(binary.BigEndian.Uint32(msg[off:]))
			body := msg[off+4:]
			if n > len(body) || n < 1 || int(body[0])+1 > n {
				yield(Record{}, fmt.Errorf("record at byte %d: length %d out of range", off, n))
				return
			}
			sl := int(body[0])
			r := Record{SourceID: string(body[1 : 1+sl]), JSON: body[1+sl : n]}
			if !yield(r, nil) {
				return
			}
			off += 4 + n
		}
	}
}
