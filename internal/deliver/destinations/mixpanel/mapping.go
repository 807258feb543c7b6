package mixpanel

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/event"
)

// endpoint is one of the Mixpanel APIs a Send may call.
type endpoint uint8

const (
	importAPI endpoint = iota // events: track, page, screen
	engageAPI                 // user profiles: identify
	groupsAPI                 // group profiles: group
	numEndpoints
)

func (e endpoint) String() string {
	switch e {
	case importAPI:
		return "/import"
	case engageAPI:
		return "/engage"
	}
	return "/groups"
}

// Names of the events page and screen calls become.
const (
	loadedPage   = "Loaded a Page"
	loadedScreen = "Loaded a Screen"
)

// maxRecord is the most bytes one event or profile update may take:
// Mixpanel refuses records of 1 MB and more.
const maxRecord = 1_000_000

// mapped is one event as Mixpanel gets it.
type mapped struct {
	to       endpoint
	body     []byte // one JSON object
	insertID string // import only
}

// mapEvent turns ev into its Mixpanel record, or into the Result that
// ends its attempt when it cannot be sent (unsupported type, invalid event
// or settings).
func (d *destination) mapEvent(ev *deliver.Event) (mapped, *deliver.Result) {
	doc, err := event.Decode(ev.JSON)
	if err != nil {
		return mapped{}, discard(deliver.ReasonInvalidEvent, fmt.Sprintf("reading the event: %v", err))
	}
	typ := ev.Type
	if typ == "" {
		typ = str(doc["type"])
	}
	var m mapped
	var v any
	switch typ {
	case "track", "page", "screen":
		m.to = importAPI
		v, m.insertID, err = d.importRecord(typ, doc, ev)
	case "identify":
		if d.s.ProjectToken == "" {
			return mapped{}, discard(deliver.ReasonInvalidSettings, "identify calls update Mixpanel user profiles through /engage, which needs the project_token setting")
		}
		m.to = engageAPI
		v, err = d.engageRecord(doc)
	case "group":
		if d.s.GroupKey == "" {
			return mapped{}, discard(deliver.ReasonUnsupportedEventType, "group calls need the group_key setting (a group key set up under Group Analytics in the Mixpanel project)")
		}
		if d.s.ProjectToken == "" {
			return mapped{}, discard(deliver.ReasonInvalidSettings, "group calls update Mixpanel group profiles through /groups, which needs the project_token setting")
		}
		m.to = groupsAPI
		v, err = d.groupsRecord(doc)
	case "alias":
		return mapped{}, discard(deliver.ReasonUnsupportedEventType, "alias calls are not sent to Mixpanel: with Simplified ID Merge the $device_id and $user_id on events link identities, and $create_alias only works in legacy projects")
	default:
		return mapped{}, discard(deliver.ReasonUnsupportedEventType, fmt.Sprintf("Mixpanel takes track, page, screen, identify and group calls, not %q", typ))
	}
	if err != nil {
		return mapped{}, discard(deliver.ReasonInvalidEvent, err.Error())
	}
	if m.body, err = json.Marshal(v); err != nil {
		return mapped{}, discard(deliver.ReasonInvalidEvent, fmt.Sprintf("encoding the Mixpanel record: %v", err))
	}
	if len(m.body) >= maxRecord {
		return mapped{}, discard(deliver.ReasonInvalidEvent, fmt.Sprintf("the Mixpanel record is %d bytes; Mixpanel takes records under 1 MB", len(m.body)))
	}
	return m, nil
}

// importRecord maps a track, page or screen call to an /import event.
func (d *destination) importRecord(typ string, doc event.Doc, ev *deliver.Event) (map[string]any, string, error) {
	t, err := eventTime(doc, ev)
	if err != nil {
		return nil, "", err
	}
	props := contextProperties(obj(doc["context"]))
	var name string
	switch typ {
	case "track":
		name = str(doc["event"])
		if name == "" {
			return nil, "", fmt.Errorf("a track call needs an event name")
		}
		for k, v := range obj(doc["properties"]) {
			props[k] = v
		}
	default: // page, screen
		p := obj(doc["properties"])
		pageName, category := str(doc["name"]), str(doc["category"])
		if pageName == "" {
			pageName = str(p["name"])
		}
		if category == "" {
			category = str(p["category"])
		}
		name = pageEventName(typ, d.s.ConsolidatedPageCalls, category, pageName)
		if u := str(p["url"]); u != "" {
			props["$current_url"] = u
		}
		for k, v := range p {
			props[k] = v
		}
		if _, ok := props["name"]; !ok && pageName != "" {
			props["name"] = pageName
		}
		if _, ok := props["category"]; !ok && category != "" {
			props["category"] = category
		}
	}
	userID, anonymousID := str(doc["userId"]), str(doc["anonymousId"])
	messageID := ev.MessageID
	if messageID == "" {
		messageID = str(doc["messageId"])
	}
	id := insertID(messageID, ev.JSON)
	props["time"] = t.UnixMilli()
	props["distinct_id"] = first(userID, anonymousID)
	props["$insert_id"] = id
	delete(props, "$user_id")
	delete(props, "$device_id")
	if userID != "" {
		props["$user_id"] = userID
	}
	if anonymousID != "" {
		props["$device_id"] = anonymousID
	}
	return map[string]any{"event": name, "properties": props}, id, nil
}

// pageEventName is the event a page or screen call becomes.
func pageEventName(typ string, consolidated bool, category, name string) string {
	full := strings.TrimSpace(category + " " + name)
	switch {
	case typ == "page" && (consolidated || full == ""):
		return loadedPage
	case typ == "page":
		return "Viewed " + full + " Page"
	case consolidated || full == "":
		return loadedScreen
	}
	return "Viewed " + full + " Screen"
}

// engageRecord maps an identify call to a user profile $set.
func (d *destination) engageRecord(doc event.Doc) (map[string]any, error) {
	ctx := obj(doc["context"])
	id := first(str(doc["userId"]), str(doc["anonymousId"]))
	if id == "" {
		return nil, fmt.Errorf("an identify call needs a userId or an anonymousId")
	}
	traits, ok := doc["traits"].(map[string]any)
	if !ok {
		traits = obj(ctx["traits"]) // Segment's older libraries put them there
	}
	rec := map[string]any{
		"$token":       d.s.ProjectToken,
		"$distinct_id": id,
		"$set":         profileProperties(traits),
		"$ip":          first(str(ctx["ip"]), "0"), // "0": not the location of Conflux's server
	}
	if active, ok := ctx["active"].(bool); ok && !active {
		rec["$ignore_time"] = true // a background update: do not move "Last Seen"
	}
	return rec, nil
}

// groupsRecord maps a group call to a group profile $set.
func (d *destination) groupsRecord(doc event.Doc) (map[string]any, error) {
	id := str(doc["groupId"])
	if id == "" {
		return nil, fmt.Errorf("a group call needs a groupId")
	}
	return map[string]any{
		"$token":     d.s.ProjectToken,
		"$group_key": d.s.GroupKey,
		"$group_id":  id,
		"$set":       profileProperties(obj(doc["traits"])),
	}, nil
}

// profileTraits are the Segment traits that Mixpanel profiles know under
// a reserved name, each with the traits that give it, first preferred.
var profileTraits = []struct {
	to   string
	from []string
}{
	{"$email", []string{"email"}},
	{"$phone", []string{"phone"}},
	{"$name", []string{"name"}},
	{"$first_name", []string{"firstName", "first_name"}},
	{"$last_name", []string{"lastName", "last_name"}},
	{"$avatar", []string{"avatar"}},
	{"$created", []string{"createdAt", "created_at"}},
}

// profileProperties maps traits to profile properties: the special
// traits to Mixpanel's reserved names, the rest as they are.
func profileProperties(traits map[string]any) map[string]any {
	out := make(map[string]any, len(traits))
	taken := make(map[string]bool)
	for _, p := range profileTraits {
		for _, f := range p.from {
			taken[f] = true
		}
	}
	for k, v := range traits {
		if !taken[k] {
			out[k] = v
		}
	}
	for _, p := range profileTraits {
		for _, f := range p.from {
			if v, ok := traits[f]; ok {
				if _, set := out[p.to]; !set {
					out[p.to] = v
				}
			}
		}
	}
	if _, ok := out["$name"]; !ok {
		if fn, ln := str(out["$first_name"]), str(out["$last_name"]); fn != "" && ln != "" {
			out["$name"] = fn + " " + ln
		}
	}
	return out
}

// contextProperties maps the Segment context to Mixpanel's default event
// properties.
func contextProperties(c map[string]any) map[string]any {
	p := make(map[string]any)
	set := func(key string, v any) {
		switch x := v.(type) {
		case nil:
			return
		case string:
			if x == "" {
				return
			}
		}
		p[key] = v
	}
	set("ip", str(c["ip"]))
	if ua := str(c["userAgent"]); ua != "" {
		browser, version := parseUserAgent(ua)
		set("$browser", browser)
		set("$browser_version", version)
	}
	os := obj(c["os"])
	set("$os", os["name"])
	set("$os_version", os["version"])
	device := obj(c["device"])
	set("$manufacturer", device["manufacturer"])
	set("$model", device["model"])
	set("$device", device["name"])
	app := obj(c["app"])
	set("$app_version_string", app["version"])
	set("$app_build_number", app["build"])
	screen := obj(c["screen"])
	set("$screen_width", screen["width"])
	set("$screen_height", screen["height"])
	network := obj(c["network"])
	set("$carrier", network["carrier"])
	set("$wifi", network["wifi"])
	lib := obj(c["library"])
	set("mp_lib", lib["name"])
	set("$lib_version", lib["version"])
	page := obj(c["page"])
	set("$current_url", page["url"])
	set("$referrer", page["referrer"])
	campaign := obj(c["campaign"])
	for _, k := range [...]string{"source", "medium", "name", "term", "content"} {
		key := "utm_" + k
		if k == "name" {
			key = "utm_campaign"
		}
		set(key, campaign[k])
	}
	return p
}

// eventTime is when the event happened: its timestamp (which the Tracking
// API always sets), else when it was received. It must not be the time of
// sending: Mixpanel deduplicates on (event, time, distinct_id,
// $insert_id), so a resend must carry the same time.
func eventTime(doc event.Doc, ev *deliver.Event) (time.Time, error) {
	for _, k := range [...]string{"timestamp", "originalTimestamp", "receivedAt"} {
		if t, ok := parseTime(str(doc[k])); ok {
			return t, nil
		}
	}
	if !ev.ReceivedAt.IsZero() {
		return ev.ReceivedAt, nil
	}
	return time.Time{}, fmt.Errorf("the event has no readable timestamp, which Mixpanel requires")
}

var timeLayouts = [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"}

func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// insertID is the event's $insert_id, what Mixpanel deduplicates resends
// on. Mixpanel takes at most 36 bytes of letters, digits and "-": a
// messageId of that form (a UUID) is used as it is; any other (e.g.
// analytics.js's "ajs-next-…", 41 bytes or more) becomes the first 36 hex
// digits of its SHA-256, so that every attempt of one event carries the
// same id. An event without a messageId gets the hash of its JSON.
func insertID(messageID string, raw []byte) string {
	if validInsertID(messageID) {
		return messageID
	}
	var sum [sha256.Size]byte
	if messageID != "" {
		sum = sha256.Sum256([]byte(messageID))
	} else {
		sum = sha256.Sum256(raw)
	}
	return hex.EncodeToString(sum[:])[:36]
}

// reservedIDs are the values Mixpanel refuses as a distinct_id or an
// $insert_id, taken to be implementation mistakes.
var reservedIDs = map[string]bool{
	"00000000-0000-0000-0000-000000000000": true, "anon": true, "anonymous": true, "nil": true,
	"none": true, "null": true, "n/a": true, "na": true, "undefined": true, "unknown": true,
	"<nil>": true, "0": true, "-1": true, "true": true, "false": true, "[]": true, "{}": true,
}

func validInsertID(s string) bool {
	if s == "" || len(s) > 36 || reservedIDs[strings.ToLower(s)] {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func discard(reason, msg string) *deliver.Result {
	return &deliver.Result{Outcome: deliver.Discard, Reason: reason, Error: msg}
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// str returns v as a string when it is one (or a number, as some
// libraries send ids); "" otherwise.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
