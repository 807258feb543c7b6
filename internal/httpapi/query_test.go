package httpapi

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestQueryHelpers(t *testing.T) {
	if err := CheckParams(url.Values{"a": {"1"}, "b": {"2"}}, "a", "b"); err != nil {
		t.Errorf("known parameters: %v", err)
	}
	if err := CheckParams(url.Values{"destination_id": {"x"}}, "destination"); err == nil || !strings.Contains(err.Error(), `unknown parameter "destination_id" (known: destination)`) {
		t.Errorf("unknown parameter: %v", err)
	}
	for v, want := range map[string]int{"": 20, "1": 1, "100": 100} {
		if n, err := QueryLimit(v, 20, 100); err != nil || n != want {
			t.Errorf("QueryLimit(%q) = %d %v, want %d", v, n, err, want)
		}
	}
	for _, v := range []string{"0", "101", "-1", "x", "1.5"} {
		if _, err := QueryLimit(v, 20, 100); err == nil || !strings.Contains(err.Error(), "from 1 to 100") {
			t.Errorf("QueryLimit(%q): %v", v, err)
		}
	}
	if tm, err := QueryTime("from", ""); err != nil || !tm.IsZero() {
		t.Errorf("absent time: %v %v", tm, err)
	}
	if tm, err := QueryTime("from", "2026-12-01T09:00:00Z"); err != nil || !tm.Equal(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("a time: %v %v", tm, err)
	}
	if _, err := QueryTime("from", "yesterday"); err == nil || !strings.Contains(err.Error(), `from "yesterday": want an RFC 3339 time`) {
		t.Errorf("a bad time: %v", err)
	}
}
