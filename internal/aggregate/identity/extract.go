package identity

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/confluxcdp/conflux/internal/event"
)

// ID is one identifier: a type and a value, such as email:ada@example.com.
type ID struct {
	Type  string
	Value string
}

// String renders the identifier as the Profile API writes it: type:value.
func (id ID) String() string { return id.Type + ":" + id.Value }

// Extracted are the identifiers an event carries, highest priority first.
type Extracted struct {
	// Users identify the user the event is about.
	Users []ID
	// Accounts identify the account (group) of a group event, or from
	// context.externalIds with collection accounts.
	Accounts []ID
	// PreviousID is an alias event's previousId; the resolver decides
	// whether it names a user_id or an anonymous_id.
	PreviousID string
}

// decodeFields are the top-level fields [Rules.Decode] decodes: what
// Extract reads, and the event's time and ids for the profile store.
var decodeFields = []string{"type", "userId", "anonymousId", "previousId", "groupId", "traits", "integrations",
	"timestamp", "messageId", "receivedAt"}

// contextKeys are the keys of context that Extract reads.
var contextKeys = []string{"device", "traits", "externalIds", "integrations"}

// Decode decodes what [Rules.Extract] and the profile store read of a
// stored event. properties and context are decoded only when their bytes
// may hold a key Extract reads (properties: email and the custom types;
// context: device, traits, externalIds, integrations): most events carry
// none, and their context (page, library, userAgent) is the bulk of them.
func (r *Rules) Decode(rec []byte) (event.Doc, error) {
	doc, m, err := event.DecodeSelected(rec, func(k string) bool { return slices.Contains(decodeFields, k) })
	if err != nil {
		return nil, err
	}
	decodeIf(doc, m, "properties", r.propertyKeys)
	decodeIf(doc, m, "context", contextKeys)
	return doc, nil
}

// decodeIf decodes the undecoded member key into doc when it may hold one
// of keys.
func decodeIf(doc event.Doc, m event.Members, key string, keys []string) {
	raw, ok := m.Undecoded(key)
	if !ok || !mayHold(raw, keys) {
		return
	}
	if v, err := event.Decode(raw); err == nil {
		doc[key] = v
	}
}

// mayHold reports whether the JSON object raw may have a member named one
// of keys, at any depth: a key is written as "key" unless escaped.
func mayHold(raw []byte, keys []string) bool {
	if bytes.IndexByte(raw, '\\') >= 0 {
		return true
	}
	for _, k := range keys {
		if bytes.Contains(raw, []byte(`"`+k+`"`)) {
			return true
		}
	}
	return false
}

// Extract returns the identifiers of doc (spec §6.1), without blocked
// values, in priority order. A userId equal to the event's own anonymousId
// is not promoted as a user_id: it is the anonymous id sent twice (an app
// that identifies with the anonymous id), and taking it for a user would
// make the later, real userId break the user_id limit.
func (r *Rules) Extract(doc event.Doc) Extracted {
	var ex Extracted
	typ, _ := doc["type"].(string)
	anon := idString(doc["anonymousId"])
	add := func(coll, t, v string) {
		if v == "" || r.Blocked(t, v) {
			return
		}
		list := &ex.Users
		if coll == Accounts {
			list = &ex.Accounts
		}
		for _, have := range *list {
			if have.Type == t && have.Value == v {
				return
			}
		}
		*list = append(*list, ID{Type: t, Value: v})
	}
	if uid := idString(doc["userId"]); uid != anon {
		add(Users, TypeUserID, uid)
	}
	add(Users, TypeAnonymousID, anon)

	ctx, _ := doc["context"].(map[string]any)
	ctxTraits, _ := ctx["traits"].(map[string]any)
	props, _ := doc["properties"].(map[string]any)
	var traits map[string]any
	if typ == event.Identify {
		traits, _ = doc["traits"].(map[string]any)
	}
	for _, m := range []map[string]any{traits, ctxTraits, props} {
		add(Users, TypeEmail, idString(m["email"]))
	}
	for _, m := range []map[string]any{traits, ctxTraits} {
		add(Users, TypeCrossDomainID, idString(m["crossDomainId"]))
		add(Users, TypeCrossDomainID, idString(m["cross_domain_id"]))
		add(Users, TypeBrazeID, idString(m["braze_id"]))
	}
	if dev, ok := ctx["device"].(map[string]any); ok {
		var os string
		switch strings.ToLower(idString(dev["type"])) {
		case "android":
			os = "android"
		case "ios", "ipados", "tvos", "watchos":
			os = "ios"
		}
		if os != "" {
			add(Users, os+".id", idString(dev["id"]))
			if tracking, _ := dev["adTrackingEnabled"].(bool); tracking {
				add(Users, os+".idfa", idString(dev["advertisingId"]))
			}
			add(Users, os+".push_token", idString(dev["token"]))
		}
	}
	for _, integ := range []any{doc["integrations"], ctx["integrations"]} {
		if m, ok := integ.(map[string]any); ok {
			if ga, ok := m["Google Analytics"].(map[string]any); ok {
				add(Users, TypeGAClientID, idString(ga["clientId"]))
			}
		}
	}
	if list, ok := ctx["externalIds"].([]any); ok {
		for _, item := range list {
			e, ok := item.(map[string]any)
			if !ok {
				continue
			}
			id, t := idString(e["id"]), strings.ToLower(idString(e["type"]))
			coll, enc := idString(e["collection"]), idString(e["encoding"])
			if id == "" || t == "" || enc == "" || (coll != Users && coll != Accounts) || strings.ContainsAny(t, ": /") {
				continue // Segment requires all four fields
			}
			add(coll, t, id)
		}
	}
	for coll, types := range r.custom {
		for _, t := range types {
			for _, m := range []map[string]any{traits, ctxTraits, props} {
				add(coll, t, idString(m[t]))
			}
		}
	}
	if typ == event.Group {
		add(Accounts, TypeGroupID, idString(doc["groupId"]))
	}
	if typ == event.Alias {
		if prev := idString(doc["previousId"]); prev != "" && !r.Blocked(TypeUserID, prev) {
			ex.PreviousID = prev
		}
	}
	r.sort(ex.Users)
	r.sort(ex.Accounts)
	return ex
}

// sort orders ids by priority, keeping the extraction order among equals
// (so that of two user_ids the event's own comes first).
func (r *Rules) sort(ids []ID) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && r.before(ids[j].Type, ids[j-1].Type); j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// idString returns an identifier value: a string as it is (trimmed), a
// number in its digits, anything else "".
func idString(v any) string {
	switch v := v.(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	}
	return ""
}
