package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
)

// SourceInfo names the source a checked event came from, for
// [Compiled.ViolationEvent].
type SourceInfo struct {
	ID   string
	Name string
	Slug string
}

// ViolationGenerated is the event name of forwarded violations.
const ViolationGenerated = "Violation Generated"

// ViolationEvent builds the track event Segment forwards for violation v of
// orig, an event from src checked against this plan (spec §8.2, Segment's
// "Forward Violations"): event "Violation Generated", userId
// "schema-violations", the properties appVersion, eventMessageID,
// eventName, eventSentAt, eventTimestamp, eventType, sourceID, sourceName,
// sourceSlug, trackingPlanID, trackingPlanName, violationDescription,
// violationField and violationType, context.app and context.library copied
// from orig, and forwardedFromProject (src.ID). Absent strings are "".
//
// The messageId is "sch-" and 32 hex digits of a hash of the source, the
// original messageId, the plan and the violation, so checking the same
// event again gives the same messageIds and a replay is deduplicated.
// timestamp and receivedAt are now.
func (c *Compiled) ViolationEvent(orig event.Doc, v Violation, src SourceInfo, now time.Time) event.Doc {
	typ := str(orig["type"])
	msgID := str(orig["messageId"])
	var name string
	switch typ {
	case "track":
		name = str(orig["event"])
	case "page", "screen":
		name = str(orig["name"])
	}
	ctx, _ := orig["context"].(map[string]any)
	app := clone(ctx["app"])
	var appVersion string
	if a, ok := app.(map[string]any); ok {
		appVersion = str(a["version"])
	}
	ts := now.UTC().Format(event.TimeLayout)
	return event.Doc{
		"type":      "track",
		"event":     ViolationGenerated,
		"userId":    "schema-violations",
		"messageId": violationMessageID(src.ID, msgID, c.id, v),
		"context": map[string]any{
			"app":     app,
			"library": clone(ctx["library"]),
		},
		"integrations": map[string]any{},
		"properties": map[string]any{
			"appVersion":           appVersion,
			"eventMessageID":       msgID,
			"eventName":            name,
			"eventSentAt":          str(orig["sentAt"]),
			"eventTimestamp":       str(orig["timestamp"]),
			"eventType":            typ,
			"sourceID":             src.ID,
			"sourceName":           src.Name,
			"sourceSlug":           src.Slug,
			"trackingPlanID":       c.id,
			"trackingPlanName":     c.name,
			"violationDescription": v.Description,
			"violationField":       v.Field,
			"violationType":        string(v.Type),
		},
		"timestamp":            ts,
		"receivedAt":           ts,
		"forwardedFromProject": src.ID,
	}
}

// violationMessageID derives a forwarded violation's messageId.
func violationMessageID(sourceID, messageID, planID string, v Violation) string {
	h := sha256.New()
	for _, s := range [...]string{sourceID, messageID, planID, string(v.Type), v.Field, v.Description} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return "sch-" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// str returns v as a string: strings as they are, numbers in their JSON
// digits, anything else "".
func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// clone deep-copies a decoded JSON value, so the violation event does not
// share maps with the original.
func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = clone(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = clone(e)
		}
		return s
	}
	return v
}
