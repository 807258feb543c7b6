// Package warehouse turns events into rows of Segment's warehouse layout
// (spec §10) — the tables, their snake_case columns, nested objects
// flattened with "_", and each value's inferred type — for the warehouse
// loaders in its subpackages. It knows no database: a loader creates the
// tables and columns the rows name, and widens a column when a value no
// longer fits it.
package warehouse

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLength is the longest table or column name: PostgreSQL's limit.
const MaxNameLength = 63

// Name turns an event name, property or trait key into a table or column
// name: snake_case (CamelCase split, every run of characters that are not
// letters or digits one "_", lowercase), with a "_" in front of a name that
// starts with a digit or is a reserved word, and at most MaxNameLength
// bytes. "" stays "".
func Name(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	// prev is the previous rune as it was (0 after a separator or at the
	// start), so that a run of capitals is one word.
	var prev rune
	runes := []rune(s)
	for i, r := range runes {
		switch {
		case unicode.IsUpper(r):
			// A capital after a lowercase letter or digit, or the last of a
			// run of capitals before a lowercase (HTTPServer → http_server),
			// starts a word.
			next := rune(0)
			if i+1 < len(runes) {
				next = runes[i+1]
			}
			if prev != 0 && (unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && unicode.IsLower(next))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			prev = r
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
			prev = r
		default:
			if prev != 0 {
				b.WriteByte('_')
			}
			prev = 0
		}
	}
	name := strings.TrimRight(b.String(), "_")
	if name == "" {
		return ""
	}
	if first, _ := utf8.DecodeRuneInString(name); unicode.IsDigit(first) || isReserved(name) {
		name = "_" + name
	}
	return truncate(name)
}

// Join names a flattened column: the parent's name, "_", the child's
// (without its own leading "_"). The parent keeps its prefix, so that the
// result never starts with a digit: {"user": {"id"}} is _user_id.
func Join(parent, child string) string {
	if parent == "" {
		return child
	}
	return truncate(parent + "_" + strings.TrimPrefix(child, "_"))
}

// truncate cuts s to MaxNameLength bytes on a rune boundary.
func truncate(s string) string {
	if len(s) <= MaxNameLength {
		return s
	}
	cut := MaxNameLength
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], "_")
}

// isReserved reports whether name is one of PostgreSQL's reserved key
// words, which a column or table may not be named without quotes; Name
// prefixes them with "_", as Segment does for its warehouses' reserved
// words.
func isReserved(name string) bool {
	switch name {
	case "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
		"binary", "both", "case", "cast", "check", "collate", "collation", "column", "concurrently", "constraint",
		"create", "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time",
		"current_timestamp", "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end",
		"except", "false", "fetch", "for", "foreign", "freeze", "from", "full", "grant", "group", "having",
		"ilike", "in", "initially", "inner", "intersect", "into", "is", "isnull", "join", "lateral", "leading",
		"left", "like", "limit", "localtime", "localtimestamp", "natural", "not", "notnull", "null", "offset",
		"on", "only", "or", "order", "outer", "overlaps", "placing", "primary", "references", "returning", "right",
		"select", "session_user", "similar", "some", "symmetric", "system_user", "table", "tablesample", "then",
		"to", "trailing", "true", "union", "unique", "user", "using", "variadic", "verbose", "when", "where",
		"window", "with":
		return true
	}
	return false
}
