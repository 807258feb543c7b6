package store

import (
	"strconv"
	"strings"
)

// Rebind rewrites a query written with '?' placeholders for this DB's
// engine: unchanged for SQLite, numbered $1..$n for PostgreSQL. A '?' inside
// a single-quoted literal, a double-quoted identifier, a -- comment or a /* */
// comment is left alone.
func (db *DB) Rebind(query string) string {
	if db.dialect != Postgres {
		return query
	}
	return rebindDollar(query)
}

// rebindDollar numbers the '?' placeholders of query as $1..$n.
func rebindDollar(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			// A doubled quote inside ('it''s') closes and reopens the
			// literal, which copies it unchanged all the same.
			end := strings.IndexByte(query[i+1:], c)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			end += i + 2
			b.WriteString(query[i:end])
			i = end
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			end += i + 1
			b.WriteString(query[i:end])
			i = end
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			end := strings.Index(query[i+2:], "*/")
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			end += i + 4
			b.WriteString(query[i:end])
			i = end
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}
