package event

import "fmt"

// span is a value's [s, e) in the body; the zero span means "absent" (no
// value of an event can start at offset 0, which holds the body's '{' or '[').
type span struct{ s, e int }

func (sp span) ok() bool { return sp.e > sp.s }

// member is one member of an event object: the key token's span (quotes
// included) and the value's span.
type member struct {
	ks, ke, vs, ve int
	escaped        bool
}

// fields are the spans of the members one event is normalized by.
type fields struct {
	obj                                   span // the whole object; zero if the batch item is not an object
	members                               *[]member
	first, last                           int // this event's members are (*members)[first:last]
	typ, userID, anonID, messageID, event span
	name                                  span // a page's or screen's name
	groupID, previousID                   span
	timestamp, originalTimestamp, sentAt  span
	context, integrations, writeKey       span
}

// Payload is a parsed request body: its events located but not yet
// normalized. A Payload is reusable: Parse resets it, so a caller may keep a
// pool of them and avoid allocating per request.
type Payload struct {
	body     []byte
	pathType string
	events   []fields
	members  []member // of all events, in order

	batchContext, batchIntegrations, batchSentAt span

	// WriteKey is the writeKey found in the body ("" if none): the event's
	// own for a single call, the top-level one for a batch.
	WriteKey string
}

// Len is the number of events (valid or not) in the payload.
func (p *Payload) Len() int { return len(p.events) }

// Parse validates body as a Tracking API request and locates its events.
// pathType is the message type named by the path for single calls
// ("track" for /v1/track or /v1/t), or "" for a batch (/v1/batch, /v1/b,
// /v1/import). It fails with an [*Error] when the body is not JSON, not an
// object, too large, or carries too many events; problems of one event are
// found later, by [Payload.AppendRecords], and never fail the request.
func (p *Payload) Parse(body []byte, pathType string, lim Limits) error {
	*p = Payload{body: body, pathType: pathType, events: p.events[:0], members: p.members[:0]}
	maxBytes := lim.MaxBatchBytes
	if pathType != "" {
		maxBytes = lim.MaxEventBytes
	}
	if len(body) > maxBytes {
		return reqErr(CodeTooLarge, "body is %d bytes; the limit is %d", len(body), maxBytes)
	}
	i := skipSpace(body, 0)
	if i >= len(body) {
		return reqErr(CodeInvalidJSON, "body is empty")
	}
	if body[i] != '{' {
		if _, err := scanValue(body, i, 0); err != nil {
			return reqErr(CodeInvalidJSON, "%v", err)
		}
		return reqErr(CodeInvalidBody, "body must be a JSON object")
	}
	var end int
	var err error
	if pathType != "" {
		p.events = append(p.events, fields{members: &p.members})
		f := &p.events[0]
		end, err = scanObject(body, i, 0, f.onMember)
		f.obj, f.last = span{i, end}, len(p.members)
		if err == nil && f.writeKey.ok() {
			p.WriteKey, _ = unquote(body[f.writeKey.s:f.writeKey.e])
		}
	} else {
		end, err = scanObject(body, i, 0, p.batchMember(lim))
	}
	if err != nil {
		if e, ok := err.(*Error); ok {
			return e
		}
		return reqErr(CodeInvalidJSON, "%v", err)
	}
	if j := skipSpace(body, end); j != len(body) {
		return reqErr(CodeInvalidJSON, "%v", errAt(j, "unexpected data after the JSON object"))
	}
	return nil
}

func (p *Payload) batchMember(lim Limits) memberFunc {
	body := p.body
	return func(keyTok []byte, _ int, esc bool, vs, ve int) error {
		switch string(keyBytes(keyTok, esc)) {
		case "batch":
			if body[vs] != '[' {
				return reqErr(CodeInvalidBody, `"batch" must be an array of events`)
			}
			_, err := scanArray(body, vs, 1, func(idx, s, e int) error {
				if idx >= lim.MaxBatchEvents {
					return reqErr(CodeTooManyEvents, "batch has more than %d events", lim.MaxBatchEvents)
				}
				p.events = append(p.events, fields{members: &p.members, first: len(p.members)})
				if body[s] == '{' {
					f := &p.events[len(p.events)-1]
					f.obj = span{s, e}
					if _, err := scanObject(body, s, 2, f.onMember); err != nil {
						return err
					}
					f.last = len(p.members)
				}
				return nil
			})
			return err
		case "context":
			p.batchContext = objectSpan(body, vs, ve)
		case "integrations":
			p.batchIntegrations = objectSpan(body, vs, ve)
		case "sentAt":
			p.batchSentAt = span{vs, ve}
		case "writeKey":
			if body[vs] == '"' {
				p.WriteKey, _ = unquote(body[vs:ve])
			}
		}
		return nil
	}
}

// objectSpan returns the span if it holds an object, else the zero span.
func objectSpan(body []byte, vs, ve int) span {
	if body[vs] == '{' {
		return span{vs, ve}
	}
	return span{}
}

// onMember is the memberFunc that records f's fields. Keys with escapes
// are compared after unquoting, so "\u0074ype" is still "type".
func (f *fields) onMember(keyTok []byte, ks int, esc bool, vs, ve int) error {
	*f.members = append(*f.members, member{ks: ks, ke: ks + len(keyTok), vs: vs, ve: ve, escaped: esc})
	{
		sp := span{vs, ve}
		switch string(keyBytes(keyTok, esc)) {
		case "type":
			f.typ = sp
		case "userId":
			f.userID = sp
		case "anonymousId":
			f.anonID = sp
		case "messageId":
			f.messageID = sp
		case "event":
			f.event = sp
		case "name":
			f.name = sp
		case "groupId":
			f.groupID = sp
		case "previousId":
			f.previousID = sp
		case "timestamp":
			f.timestamp = sp
		case "originalTimestamp":
			f.originalTimestamp = sp
		case "sentAt":
			f.sentAt = sp
		case "context":
			f.context = sp
		case "integrations":
			f.integrations = sp
		case "writeKey":
			f.writeKey = sp
		}
		return nil
	}
}

// keyBytes returns a member's key, unescaped. Callers switch on
// string(keyBytes(...)), which does not allocate.
func keyBytes(tok []byte, escaped bool) []byte {
	if escaped {
		k, _ := unquote(tok)
		return []byte(k)
	}
	return tok[1 : len(tok)-1]
}

// String describes the payload for debugging.
func (p *Payload) String() string {
	return fmt.Sprintf("payload{type=%q events=%d bytes=%d}", p.pathType, len(p.events), len(p.body))
}

// Describe returns event i's type (one of the Segment types, or "" when it
// has none that is valid) and its name — a track's event, a page's or a
// screen's name — what the delivery metrics count a request's events by
// (as the later stages do). Names with escapes are unescaped; a name that
// is not a string is "".
func (p *Payload) Describe(i int) (typ, name string) {
	f := &p.events[i]
	b := p.body
	typ = p.pathType
	if typ == "" && f.typ.ok() && b[f.typ.s] == '"' {
		typ = messageType(stringBytes(b[f.typ.s:f.typ.e]))
	}
	var sp span
	switch typ {
	case Track:
		sp = f.event
	case Page, Screen:
		sp = f.name
	}
	if sp.ok() && b[sp.s] == '"' {
		if s, err := unquote(b[sp.s:sp.e]); err == nil {
			name = s
		}
	}
	return typ, name
}
