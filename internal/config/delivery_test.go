package config

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, `"0s"`},
		{4 * time.Hour, `"4h"`},
		{90 * time.Minute, `"1h30m"`},
		{time.Minute, `"1m"`},
		{90 * time.Second, `"1m30s"`},
		{time.Hour + 30*time.Second, `"1h0m30s"`},
		{1500 * time.Millisecond, `"1.5s"`},
		{-2 * time.Hour, `"-2h"`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			b, err := json.Marshal(Duration(tc.d))
			if err != nil || string(b) != tc.want {
				t.Fatalf("Marshal(%v) = %s, %v; want %s", tc.d, b, err, tc.want)
			}
			var back Duration
			if err := json.Unmarshal(b, &back); err != nil || time.Duration(back) != tc.d {
				t.Errorf("Unmarshal(%s) = %v, %v; want %v", b, time.Duration(back), err, tc.d)
			}
		})
	}

	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{`"4h0m0s"`, 4 * time.Hour, ""},
		{`"240m"`, 4 * time.Hour, ""},
		{`null`, 7, ""}, // leaves the value alone
		{`"4 hours"`, 0, `"4 hours" is not a duration: write it like 4h or 90m`},
		{`""`, 0, `"" is not a duration`},
		{`14400000000000`, 0, "must be a duration string"},
		{`{"h": 4}`, 0, "must be a duration string"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d := Duration(7)
			err := json.Unmarshal([]byte(tc.in), &d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Unmarshal(%s) = %v, %v; want error %q", tc.in, time.Duration(d), err, tc.wantErr)
				}
				return
			}
			if err != nil || time.Duration(d) != tc.want {
				t.Errorf("Unmarshal(%s) = %v, %v; want %v", tc.in, time.Duration(d), err, tc.want)
			}
		})
	}
}

// TestDeliveryOptionsJSON pins the shape the Config API and the store use:
// fields at their defaults are left out.
func TestDeliveryOptionsJSON(t *testing.T) {
	for _, tc := range []struct {
		o    DeliveryOptions
		want string
	}{
		{DeliveryOptions{}, `{}`},
		{DeliveryOptions{Concurrency: 4, RateLimit: 0.5, MaxRetryAge: Duration(4 * time.Hour)}, `{"concurrency":4,"rate_limit":0.5,"max_retry_age":"4h"}`},
		{DeliveryOptions{MaxRetryAge: Duration(90 * time.Minute)}, `{"max_retry_age":"1h30m"}`},
	} {
		b, err := json.Marshal(tc.o)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tc.o, b, err, tc.want)
			continue
		}
		var back DeliveryOptions
		if err := json.Unmarshal(b, &back); err != nil || back != tc.o {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", b, back, err, tc.o)
		}
	}
}

func TestDestinationValidateDelivery(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    DeliveryOptions
		want []string // paths with a problem
	}{
		{"defaults", DeliveryOptions{}, nil},
		{"lowest", DeliveryOptions{Concurrency: 1, RateLimit: 0.001, MaxRetryAge: Duration(time.Minute)}, nil},
		{"highest", DeliveryOptions{Concurrency: 256, RateLimit: 100000, MaxRetryAge: Duration(168 * time.Hour)}, nil},
		{"concurrency -1", DeliveryOptions{Concurrency: -1}, []string{"concurrency"}},
		{"concurrency 257", DeliveryOptions{Concurrency: 257}, []string{"concurrency"}},
		{"rate -0.1", DeliveryOptions{RateLimit: -0.1}, []string{"rate_limit"}},
		{"rate too high", DeliveryOptions{RateLimit: 100000.01}, []string{"rate_limit"}},
		{"rate NaN", DeliveryOptions{RateLimit: math.NaN()}, []string{"rate_limit"}},
		{"rate +Inf", DeliveryOptions{RateLimit: math.Inf(1)}, []string{"rate_limit"}},
		{"age 59s", DeliveryOptions{MaxRetryAge: Duration(59 * time.Second)}, []string{"max_retry_age"}},
		{"age past retention", DeliveryOptions{MaxRetryAge: Duration(168*time.Hour + time.Second)}, []string{"max_retry_age"}},
		{"age negative", DeliveryOptions{MaxRetryAge: Duration(-time.Hour)}, []string{"max_retry_age"}},
		{"all three", DeliveryOptions{Concurrency: 1000, RateLimit: -1, MaxRetryAge: 1}, []string{"concurrency", "rate_limit", "max_retry_age"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Destination{ID: "d", Type: "webhook", Delivery: tc.o}
			var got []string
			for _, fe := range d.Validate("destinations[3]") {
				got = append(got, fe.Path)
			}
			var want []string
			for _, p := range tc.want {
				want = append(want, "destinations[3].delivery."+p)
			}
			if !slices.Equal(got, want) {
				t.Errorf("problems at %v, want %v", got, want)
			}
			// The store refuses exactly what Validate does, and never
			// reports a value it cannot encode twice.
			_, errs := validateDestination(&d, "")
			if len(errs) != len(tc.want) {
				t.Errorf("validateDestination: %v, want %d problems", errs, len(tc.want))
			}
		})
	}
}

// TestDeliveryInDeclHash: delivery options are part of a destination's
// file declaration, so that editing them in the file is applied; a
// destination without them hashes as before they existed.
func TestDeliveryInDeclHash(t *testing.T) {
	file := func(o DeliveryOptions) string {
		t.Helper()
		f, err := checkFile(&Config{Destinations: []Destination{{
			ID: "d", Type: "webhook", Enabled: true, Sources: []string{"web"}, Settings: map[string]any{"url": "x"}, Delivery: o,
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return f.dstHashes[0]
	}
	old, err := declHash(destinationDecl{ID: "d", Type: "webhook", Enabled: true, Sources: []string{"web"}, Settings: map[string]any{"url": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if file(DeliveryOptions{}) != old {
		t.Error("a destination without delivery options hashes differently than before they existed")
	}
	seen := map[string]DeliveryOptions{old: {}}
	for _, o := range []DeliveryOptions{
		{Concurrency: 4},
		{Concurrency: 5},
		{RateLimit: 4},
		{MaxRetryAge: Duration(4 * time.Hour)},
	} {
		h := file(o)
		if prev, dup := seen[h]; dup {
			t.Errorf("delivery %+v hashes as %+v", o, prev)
		}
		seen[h] = o
	}
}
