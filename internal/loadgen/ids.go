package loadgen

import "bytes"

var messageIDKey = []byte(`"messageId":"`)

// EachMessageID calls fn with every messageId in body (an event or a JSON
// array of them, as a webhook receives them) without decoding it: what the
// benchmarks' receivers count deliveries by. The load generator's ids
// have no escapes, so the raw bytes are the id.
func EachMessageID(body []byte, fn func(id []byte)) {
	for rest := body; ; {
		i := bytes.Index(rest, messageIDKey)
		if i < 0 {
			return
		}
		rest = rest[i+len(messageIDKey):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return
		}
		fn(rest[:j])
		rest = rest[j:]
	}
}
