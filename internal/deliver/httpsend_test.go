package deliver

import (
	"net/http"
	"testing"
	"time"
)

func TestSecretHeader(t *testing.T) {
	for k, want := range map[string]bool{
		"Authorization": true, "Cookie": true, "X-Api-Key": true, "X-Api-Token": true, "X-Auth-User": true,
		"X-Signature": true, "Session-Id": true, "Idempotency-Key": false, "Content-Type": false, "X-Team": false,
	} {
		if got := secretHeader(k); got != want {
			t.Errorf("secretHeader(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	for code, want := range map[int]Outcome{
		200: Delivered, 202: Delivered, 204: Delivered, 301: Discard, 400: Discard, 401: Discard, 404: Discard,
		408: Retry, 413: Discard, 422: Discard, 429: Retry, 500: Retry, 502: Retry, 503: Retry, 504: Retry,
	} {
		if got := ClassifyStatus(code); got != want {
			t.Errorf("ClassifyStatus(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, "0.5": 500 * time.Millisecond, "-3": 0, "soon": 0, "999999": time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}
