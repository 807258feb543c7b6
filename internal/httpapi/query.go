package httpapi

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CheckParams refuses query parameters a route does not know, so that a
// typo (destination_id=) does not widen a selection silently.
func CheckParams(q url.Values, known ...string) error {
	for k := range q {
		if !slices.Contains(known, k) {
			return fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// QueryLimit reads a limit parameter: def when absent, else a whole
// number from 1 to most.
func QueryLimit(v string, def, most int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, fmt.Errorf("limit %q: want a whole number from 1 to %d", v, most)
	}
	return n, nil
}

// QueryTime reads an RFC 3339 time parameter named key; the zero time
// when it is absent.
func QueryTime(key, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-12-01T09:00:00Z", key, v)
	}
	return t, nil
}
