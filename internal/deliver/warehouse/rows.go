package warehouse

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
)

// Type is a warehouse column type, as inferred from a value.
type Type string

// The column types, narrowest first: a column that receives a value of a
// type it cannot hold is widened along bigint → double precision → text,
// and boolean and timestamp to text (see [Widen]).
const (
	Bigint    Type = "bigint"
	Double    Type = "double precision"
	Boolean   Type = "boolean"
	Timestamp Type = "timestamptz"
	Text      Type = "text"
)

// Widen returns the narrowest type that holds values of both a and b.
func Widen(a, b Type) Type {
	switch {
	case a == b:
		return a
	case (a == Bigint && b == Double) || (a == Double && b == Bigint):
		return Double
	}
	return Text
}

// Value is one column's value in a row, of the type it was inferred as.
type Value struct {
	Type Type
	// V is an int64, float64, bool, time.Time or string.
	V any
}

// Row is one row of one table.
type Row struct {
	Table  string
	Values map[string]Value
	// Upsert is set for tables of latest state (users, accounts): the row
	// replaces the one with the same id, each column only when the row is
	// newer (by received_at).
	Upsert bool
}

// Tables of the layout that are not one per event.
const (
	TableTracks     = "tracks"
	TableIdentifies = "identifies"
	TableUsers      = "users"
	TableGroups     = "groups"
	TableAccounts   = "accounts"
	TablePages      = "pages"
	TableScreens    = "screens"
	TableAliases    = "aliases"
)

// MaxTextLength bounds a text value, in bytes (Segment truncates at 512
// characters; PostgreSQL has no such limit, so Conflux keeps more).
const MaxTextLength = 65535

// commonColumns are the columns every event table has; a property or
// trait of one of these names is discarded (spec §10), as are those of the
// columns a table adds (tableColumns).
var commonColumns = []string{"id", "anonymous_id", "user_id", "received_at", "sent_at", "timestamp",
	"original_timestamp", "uuid_ts"}

// tableColumns are the columns some tables add to the common ones.
func tableColumns(typ string) []string {
	switch typ {
	case event.Track:
		return []string{"event", "event_text"}
	case event.Group:
		return []string{"group_id"}
	case event.Page, event.Screen:
		return []string{"name"}
	}
	return nil
}

// Rows returns the rows one stored event becomes (spec §10): a track is a
// row of tracks and of the table named after its event; an identify of
// identifies and users; a group of groups and accounts; a page of pages, a
// screen of screens, an alias of aliases. loaded is the uuid_ts. An event
// with no messageId, or a track with no name, gives no rows.
func Rows(doc event.Doc, loaded time.Time) []Row {
	id, _ := doc["messageId"].(string)
	if id == "" {
		return nil
	}
	common := map[string]Value{"id": {Text, id}, "uuid_ts": {Timestamp, loaded.UTC()}}
	for _, k := range [...]string{"anonymousId", "userId"} {
		if s := idText(doc[k]); s != "" {
			common[Name(k)] = Value{Text, s}
		}
	}
	for _, k := range [...]string{"receivedAt", "sentAt", "timestamp", "originalTimestamp"} {
		if t, ok := timeOf(doc[k]); ok {
			common[Name(k)] = Value{Timestamp, t}
		}
	}
	if ctx, ok := doc["context"].(map[string]any); ok {
		flatten(common, "context", ctx, nil)
	}
	typ, _ := doc["type"].(string)
	switch typ {
	case event.Track:
		name, _ := doc["event"].(string)
		table := Name(name)
		if table == "" {
			return nil
		}
		common["event"], common["event_text"] = Value{Text, table}, Value{Text, clip(name)}
		props, _ := doc["properties"].(map[string]any)
		return []Row{{Table: TableTracks, Values: common}, {Table: table, Values: with(common, props, typ)}}
	case event.Identify:
		traits := traitsOf(doc)
		rows := []Row{{Table: TableIdentifies, Values: with(common, traits, typ)}}
		if uid, ok := common["user_id"]; ok {
			users := with(pick(common, "received_at", "uuid_ts"), traits, typ)
			users["id"] = uid
			rows = append(rows, Row{Table: TableUsers, Values: users, Upsert: true})
		}
		return rows
	case event.Group:
		gid := idText(doc["groupId"])
		if gid == "" {
			return nil
		}
		common["group_id"] = Value{Text, gid}
		traits := traitsOf(doc)
		accounts := with(pick(common, "received_at", "uuid_ts"), traits, typ)
		accounts["id"] = Value{Text, gid}
		return []Row{{Table: TableGroups, Values: with(common, traits, typ)}, {Table: TableAccounts, Values: accounts, Upsert: true}}
	case event.Page, event.Screen:
		table := TablePages
		if typ == event.Screen {
			table = TableScreens
		}
		if n, _ := doc["name"].(string); n != "" {
			common["name"] = Value{Text, clip(n)}
		}
		props, _ := doc["properties"].(map[string]any)
		return []Row{{Table: table, Values: with(common, props, typ)}}
	case event.Alias:
		if prev := idText(doc["previousId"]); prev != "" {
			common["previous_id"] = Value{Text, prev}
		}
		return []Row{{Table: TableAliases, Values: common}}
	}
	return nil
}

// traitsOf returns an identify's or group's traits (context.traits when
// the call has none of its own, as older SDKs send them).
func traitsOf(doc event.Doc) map[string]any {
	if t, ok := doc["traits"].(map[string]any); ok {
		return t
	}
	ctx, _ := doc["context"].(map[string]any)
	t, _ := ctx["traits"].(map[string]any)
	return t
}

// pick returns the values of m under keys that m has.
func pick(m map[string]Value, keys ...string) map[string]Value {
	out := make(map[string]Value, len(keys))
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// with returns base plus the flattened fields of obj, unprefixed, leaving
// out every column that would collide with a common column, a column of
// the event type's tables, or a context one.
func with(base map[string]Value, obj map[string]any, typ string) map[string]Value {
	own := tableColumns(typ)
	out := make(map[string]Value, len(base)+len(obj))
	for k, v := range base {
		out[k] = v
	}
	flatten(out, "", obj, func(col string) bool {
		if strings.HasPrefix(col, "context_") {
			return false
		}
		return !slices.Contains(commonColumns, col) && !slices.Contains(own, col)
	})
	return out
}

// flatten adds obj's fields to out under prefix, nested objects joined
// with "_", arrays as JSON text; nulls make no column. keep, when set,
// says whether a column may be added.
func flatten(out map[string]Value, prefix string, obj map[string]any, keep func(string) bool) {
	for k, v := range obj {
		name := Name(k)
		if name == "" {
			continue
		}
		col := Join(prefix, name)
		if m, ok := v.(map[string]any); ok {
			flatten(out, col, m, keep)
			continue
		}
		if keep != nil && !keep(col) {
			continue
		}
		if val, ok := valueOf(v); ok {
			out[col] = val
		}
	}
}

// valueOf infers a value's column type: integers that fit int64 are
// bigint, other numbers double, strings that are RFC 3339 times
// timestamp, other strings and arrays text.
func valueOf(v any) (Value, bool) {
	switch v := v.(type) {
	case nil:
		return Value{}, false
	case bool:
		return Value{Boolean, v}, true
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return Value{Bigint, n}, true
		}
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return Value{Double, f}, true
		}
		return Value{Text, string(v)}, true
	case float64:
		return Value{Double, v}, true
	case string:
		if t, ok := timeOf(v); ok {
			return Value{Timestamp, t}, true
		}
		return Value{Text, clip(v)}, true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return Value{}, false
	}
	return Value{Text, clip(string(b))}, true
}

// timeOf reads an RFC 3339 time with a date and a time of day (the form
// SDKs send); plain dates and other strings are not times.
func timeOf(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok || len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || (s[10] != 'T' && s[10] != 't') {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// idText is an id as text: a string, or a number's digits.
func idText(v any) string {
	switch v := v.(type) {
	case string:
		return clip(v)
	case json.Number:
		return string(v)
	}
	return ""
}

// clip bounds a text value to MaxTextLength bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= MaxTextLength {
		return s
	}
	cut := MaxTextLength
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut]
}
