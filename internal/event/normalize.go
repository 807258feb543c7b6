package event

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Meta is what the request contributes to each of its events.
type Meta struct {
	// SourceID is the source the write key authenticated; it frames each record.
	SourceID string
	// ReceivedAt is the server's time of receipt, the same for a whole request.
	ReceivedAt time.Time
	// IP is the client's address, written to context.ip where Segment would
	// (see [wantsIP]); "" leaves context.ip alone.
	IP string
	// Suppressed, when set, reports whether a userId is suppressed by a
	// regulation; such events are refused with [ReasonSuppressed].
	Suppressed func(userID []byte) bool
}

// TimeLayout is how Conflux writes the times it sets: ISO-8601 in UTC with
// milliseconds, as Segment and the JavaScript SDKs do.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// AppendRecords normalizes every event of the payload and appends each
// valid one to dst as a log record (see [AppendRecord]). It returns the
// extended dst, the number of records appended, and rej extended with one
// [Rejection] per event that was not accepted.
func (p *Payload) AppendRecords(dst []byte, m Meta, lim Limits, rej []Rejection) ([]byte, int, []Rejection) {
	var recv [len(TimeLayout) + 2]byte
	recvTok := appendQuotedTime(recv[:0], m.ReceivedAt)
	n := 0
	for i := range p.events {
		mark := len(dst)
		var r *Rejection
		dst, r = p.appendEvent(dst, &p.events[i], i, m, lim, recvTok)
		if r != nil {
			dst = dst[:mark]
			rej = append(rej, *r)
			continue
		}
		n++
	}
	return dst, n, rej
}

// checked is what validation of one event learned, for the rewrite.
type checked struct {
	typ                 string
	numericIDs          [4]bool // userId, anonymousId, groupId, previousId hold numbers
	ts                  time.Time
	origTok, sentTok    []byte // raw tokens to write as originalTimestamp and sentAt
	messageIDNumeric    bool
	eventCtx, eventIntg bool // the event's own context / integrations are objects
}

func reject(idx int, reason, format string, args ...any) *Rejection {
	return &Rejection{Index: idx, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func (p *Payload) check(f *fields, idx int, m Meta, lim Limits) (checked, *Rejection) {
	var c checked
	b := p.body
	if !f.obj.ok() {
		return c, reject(idx, ReasonInvalidEvent, "event must be a JSON object")
	}
	if p.pathType == "" && f.obj.e-f.obj.s > lim.MaxEventBytes {
		return c, reject(idx, ReasonEventTooLarge, "event is %d bytes; the limit is %d", f.obj.e-f.obj.s, lim.MaxEventBytes)
	}
	c.typ = p.pathType
	if c.typ == "" {
		if !f.typ.ok() || b[f.typ.s] != '"' {
			return c, reject(idx, ReasonInvalidType, `"type" is required: one of identify, track, page, screen, group, alias`)
		}
		t := stringBytes(b[f.typ.s:f.typ.e])
		if c.typ = messageType(t); c.typ == "" {
			return c, reject(idx, ReasonInvalidType, "type %q is not one of identify, track, page, screen, group, alias", truncate(string(t)))
		}
	}
	var present [4]bool
	for k, sp := range [4]span{f.userID, f.anonID, f.groupID, f.previousID} {
		var bad bool
		present[k], c.numericIDs[k], bad = idValue(b, sp)
		if bad {
			return c, reject(idx, ReasonInvalidField, "%s must be a string or a number", [4]string{"userId", "anonymousId", "groupId", "previousId"}[k])
		}
	}
	hasUser, hasAnon, hasGroup, hasPrev := present[0], present[1], present[2], present[3]
	if hasUser && m.Suppressed != nil && m.Suppressed(idBytes(b, f.userID)) {
		return c, reject(idx, ReasonSuppressed, "userId is suppressed by a regulation")
	}
	switch c.typ {
	case Alias:
		if !hasUser {
			return c, reject(idx, ReasonMissingUserID, "alias requires userId")
		}
		if !hasPrev {
			return c, reject(idx, ReasonMissingPrevious, "alias requires previousId")
		}
	default:
		if !hasUser && !hasAnon {
			return c, reject(idx, ReasonNoUserAnonID, "userId or anonymousId is required")
		}
	}
	switch c.typ {
	case Track:
		if !f.event.ok() || b[f.event.s] != '"' || f.event.e-f.event.s <= 2 {
			return c, reject(idx, ReasonMissingEvent, `track requires "event", a non-empty string`)
		}
	case Group:
		if !hasGroup {
			return c, reject(idx, ReasonMissingGroupID, "group requires groupId")
		}
	}
	if sp := f.messageID; sp.ok() && b[sp.s] != 'n' {
		switch c0 := b[sp.s]; {
		case c0 == '"':
			id := stringBytes(b[sp.s:sp.e])
			if bytes.IndexByte(id, '\\') >= 0 {
				s, _ := unquote(b[sp.s:sp.e])
				id = []byte(s)
			}
			if n := utf8.RuneCount(id); n > lim.MaxMessageIDLen {
				return c, reject(idx, ReasonMessageIDTooLong, "messageId is %d characters; the limit is %d", n, lim.MaxMessageIDLen)
			}
			if len(id) == 0 {
				f.messageID = span{} // assign one
			}
		case c0 == '-' || c0 >= '0' && c0 <= '9':
			c.messageIDNumeric = true
		default:
			return c, reject(idx, ReasonInvalidField, "messageId must be a string")
		}
	}
	for _, o := range [2]struct {
		sp   span
		name string
	}{{f.context, "context"}, {f.integrations, "integrations"}} {
		if o.sp.ok() && b[o.sp.s] != '{' && b[o.sp.s] != 'n' {
			return c, reject(idx, ReasonInvalidField, "%s must be an object", o.name)
		}
	}
	c.eventCtx = f.context.ok() && b[f.context.s] == '{'
	c.eventIntg = f.integrations.ok() && b[f.integrations.s] == '{'

	// Timestamps (spec §1.9): a caller's timestamp becomes originalTimestamp;
	// timestamp = receivedAt - (sentAt - originalTimestamp).
	orig, origName := f.originalTimestamp, "originalTimestamp"
	if !orig.ok() || b[orig.s] == 'n' {
		orig, origName = f.timestamp, "timestamp"
	}
	sent, sentName := f.sentAt, "sentAt"
	if !sent.ok() || b[sent.s] == 'n' {
		sent = p.batchSentAt
	}
	c.ts = m.ReceivedAt
	var origT, sentT time.Time
	var err error
	if orig.ok() && b[orig.s] != 'n' {
		if origT, err = parseTime(b[orig.s:orig.e]); err != nil {
			return c, reject(idx, ReasonInvalidTimestamp, "%s: %v", origName, err)
		}
		c.origTok, c.ts = b[orig.s:orig.e], origT
	}
	if sent.ok() && b[sent.s] != 'n' {
		if sentT, err = parseTime(b[sent.s:sent.e]); err != nil {
			return c, reject(idx, ReasonInvalidTimestamp, "%s: %v", sentName, err)
		}
		c.sentTok = b[sent.s:sent.e]
		if c.origTok != nil {
			c.ts = m.ReceivedAt.Add(-sentT.Sub(origT))
		}
	}
	return c, nil
}

// idValue classifies an id field: present (a non-empty string or a number),
// numeric (a number, written back as a string), or bad (another JSON type).
func idValue(b []byte, sp span) (present, numeric, bad bool) {
	if !sp.ok() {
		return false, false, false
	}
	switch c := b[sp.s]; {
	case c == '"':
		return sp.e-sp.s > 2, false, false
	case c == 'n':
		return false, false, false
	case c == '-' || c >= '0' && c <= '9':
		return true, true, false
	}
	return false, false, true
}

// idBytes returns an id's value: the unescaped string, or a number's digits.
func idBytes(b []byte, sp span) []byte {
	tok := b[sp.s:sp.e]
	if tok[0] != '"' {
		return tok
	}
	if bytes.IndexByte(tok, '\\') >= 0 {
		s, _ := unquote(tok)
		return []byte(s)
	}
	return stringBytes(tok)
}

func (p *Payload) appendEvent(dst []byte, f *fields, idx int, m Meta, lim Limits, recvTok []byte) ([]byte, *Rejection) {
	c, r := p.check(f, idx, m, lim)
	if r != nil {
		return dst, r
	}
	b := p.body
	mark := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(len(m.SourceID)))
	dst = append(dst, m.SourceID...)
	dst = append(dst, '{')
	first := true
	sep := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
	}
	for _, mb := range p.members[f.first:f.last] {
		ks, ke, vs, ve := mb.ks, mb.ke, mb.vs, mb.ve
		drop := false
		switch string(keyBytes(b[ks:ke], mb.escaped)) {
		case "type", "messageId", "writeKey", "receivedAt", "sentAt", "timestamp", "originalTimestamp", "context":
			drop = true
		case "integrations":
			drop = p.batchIntegrations.ok() || !c.eventIntg
		case "userId":
			drop = c.numericIDs[0]
		case "anonymousId":
			drop = c.numericIDs[1]
		case "groupId":
			drop = c.numericIDs[2]
		case "previousId":
			drop = c.numericIDs[3]
		}
		if drop {
			continue
		}
		sep()
		dst = append(dst, b[ks:ke]...)
		dst = append(dst, ':')
		dst = append(dst, b[vs:ve]...)
	}
	for k, name := range [4]string{"userId", "anonymousId", "groupId", "previousId"} {
		if c.numericIDs[k] {
			sp := [4]span{f.userID, f.anonID, f.groupID, f.previousID}[k]
			sep()
			dst = appendKey(dst, name)
			dst = appendQuotedRaw(dst, b[sp.s:sp.e])
		}
	}
	sep()
	dst = append(dst, `"type":"`...)
	dst = append(dst, c.typ...)
	dst = append(dst, `","messageId":`...)
	switch {
	case !f.messageID.ok() || b[f.messageID.s] == 'n':
		dst = appendNewMessageID(dst)
	case c.messageIDNumeric:
		dst = appendQuotedRaw(dst, b[f.messageID.s:f.messageID.e])
	default:
		dst = append(dst, b[f.messageID.s:f.messageID.e]...)
	}
	dst = p.appendContext(dst, f, c, m)
	if p.batchIntegrations.ok() {
		dst = append(dst, `,"integrations":`...)
		var ev span
		if c.eventIntg {
			ev = f.integrations
		}
		dst = mergeObjects(dst, b, ev, p.batchIntegrations)
	}
	if c.origTok != nil {
		dst = append(dst, `,"originalTimestamp":`...)
		dst = append(dst, c.origTok...)
	}
	if c.sentTok != nil {
		dst = append(dst, `,"sentAt":`...)
		dst = append(dst, c.sentTok...)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = appendQuotedTime(dst, c.ts)
	dst = append(dst, `,"receivedAt":`...)
	dst = append(dst, recvTok...)
	dst = append(dst, '}')
	putRecordLen(dst, mark)
	return dst, nil
}

// appendContext writes the event's context: its own members, then the
// batch's members it does not override, then ip when Segment would add it.
func (p *Payload) appendContext(dst []byte, f *fields, c checked, m Meta) []byte {
	b := p.body
	dst = append(dst, `,"context":`...)
	var ev span
	if c.eventCtx {
		ev = f.context
	}
	var info ctxInfo
	info.scan(b, ev)
	info.scan(b, p.batchContext)
	addIP := m.IP != "" && !info.hasIP && wantsIP(info.library, info.direct)
	if !addIP {
		return mergeObjects(dst, b, ev, p.batchContext)
	}
	dst = mergeObjects(dst, b, ev, p.batchContext)
	dst = bytes.TrimRight(dst[:len(dst)-1], " \t\r\n") // reopen the object
	if dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = append(dst, `"ip":"`...)
	dst = append(dst, m.IP...)
	dst = append(dst, `"}`...)
	return dst
}

// ctxInfo is what decides whether context.ip is filled in.
type ctxInfo struct {
	hasIP, direct bool
	library       []byte
}

func (ci *ctxInfo) scan(b []byte, obj span) {
	if !obj.ok() {
		return
	}
	for ks, ke, vs, ve, next, ok := nextMember(b, obj.s); ok; ks, ke, vs, ve, next, ok = nextMember(b, next) {
		switch string(keyBytes(b[ks:ke], bytes.IndexByte(b[ks:ke], '\\') >= 0)) {
		case "ip":
			ci.hasIP = ci.hasIP || b[vs] != 'n'
		case "direct":
			ci.direct = ci.direct || string(b[vs:ve]) == "true"
		case "library":
			if ci.library == nil && b[vs] == '{' {
				for ks2, ke2, vs2, ve2, next2, ok2 := nextMember(b, vs); ok2; ks2, ke2, vs2, ve2, next2, ok2 = nextMember(b, next2) {
					if string(b[ks2:ke2]) == `"name"` && b[vs2] == '"' {
						ci.library = stringBytes(b[vs2:ve2])
					}
				}
			}
		}
	}
}

// serverLibraries are the Segment libraries that run on servers: the
// address of their request is the server's, not the user's, so Segment
// does not record it unless the call sets context.direct (spec §1.10).
var serverLibraries = [...]string{
	"analytics-go", "analytics-node", "@segment/analytics-node", "analytics-node-next",
	"analytics-python", "analytics-ruby", "analytics-java", "analytics-php",
	"analytics.net", "analytics-dotnet", "analytics-rust", "analytics-clojure",
}

// wantsIP reports whether the request's address belongs in context.ip:
// for browsers, apps and plain HTTP calls, and for server libraries only
// when they set context.direct.
func wantsIP(library []byte, direct bool) bool {
	if direct || len(library) == 0 {
		return true
	}
	for _, s := range serverLibraries {
		if bytes.EqualFold(library, []byte(s)) {
			return false
		}
	}
	return true
}

// mergeObjects writes one object holding a's members, then b's members
// whose keys a does not have. Either span may be absent.
func mergeObjects(dst, body []byte, a, b span) []byte {
	if !b.ok() {
		if !a.ok() {
			return append(dst, "{}"...)
		}
		return append(dst, body[a.s:a.e]...)
	}
	if !a.ok() {
		return append(dst, body[b.s:b.e]...)
	}
	dst = append(dst, body[a.s:a.e-1]...) // a without its closing brace
	dst = bytes.TrimRight(dst, " \t\r\n")
	empty := dst[len(dst)-1] == '{'
	for ks, ke, vs, ve, next, ok := nextMember(body, b.s); ok; ks, ke, vs, ve, next, ok = nextMember(body, next) {
		if hasKey(body, a, body[ks:ke]) {
			continue
		}
		if !empty {
			dst = append(dst, ',')
		}
		empty = false
		dst = append(dst, body[ks:ke]...)
		dst = append(dst, ':')
		dst = append(dst, body[vs:ve]...)
	}
	return append(dst, '}')
}

func hasKey(body []byte, obj span, keyTok []byte) bool {
	for ks, ke, _, _, next, ok := nextMember(body, obj.s); ok; ks, ke, _, _, next, ok = nextMember(body, next) {
		if bytes.Equal(body[ks:ke], keyTok) {
			return true
		}
	}
	return false
}

func appendKey(dst []byte, name string) []byte {
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

// appendQuotedRaw writes a number token as a JSON string.
func appendQuotedRaw(dst, tok []byte) []byte {
	dst = append(dst, '"')
	dst = append(dst, tok...)
	return append(dst, '"')
}

func appendQuotedTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}

// appendNewMessageID writes a random UUID (version 4) as a JSON string.
func appendNewMessageID(dst []byte) []byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	dst = append(dst, '"')
	dst = append(dst, s[:]...)
	return append(dst, '"')
}

// timeLayouts are the ISO-8601 forms accepted for timestamps: RFC 3339 with
// any fraction, and the same without a zone (taken as UTC).
var timeLayouts = [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"}

func parseTime(tok []byte) (time.Time, error) {
	if len(tok) < 2 || tok[0] != '"' {
		return time.Time{}, errString("must be an ISO-8601 string")
	}
	if t, ok := parseTimeFast(tok[1 : len(tok)-1]); ok {
		return t, nil
	}
	s, _ := unquote(tok)
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errString(strconv.Quote(truncate(s)) + " is not an ISO-8601 time")
}

// parseTimeFast parses the form nearly every SDK sends,
// YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM), without allocating. It
// declines (ok false) anything else, which parseTime then tries with
// package time.
func parseTimeFast(s []byte) (t time.Time, ok bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return t, false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hour, minute, sec := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return t, false
	}
	i, nsec := 19, 0
	if s[i] == '.' {
		i++
		scale := 100_000_000
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			nsec += int(s[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start || i-start > 9 {
			return t, false
		}
	}
	offset := 0
	switch rest := s[i:]; {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, m := num(rest[1:3]), num(rest[4:6])
		if h < 0 || h > 23 || m < 0 || m > 59 {
			return t, false
		}
		offset = (h*60 + m) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return t, false
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // e.g. February 30th
		return time.Time{}, false
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}

// stringBytes returns the content of a string token without its quotes.
// Escapes are left as they are: callers use it only where that is harmless
// (comparisons with plain ASCII names, lengths of typical ids).
func stringBytes(tok []byte) []byte { return tok[1 : len(tok)-1] }

type errString string

func (e errString) Error() string { return string(e) }

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
