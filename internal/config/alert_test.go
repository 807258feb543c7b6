package config

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAlerts(t *testing.T) {
	cfg, err := parseFile(t, "alerts.good.yaml")
	if err != nil {
		t.Fatalf("unexpected error:\n%v", err)
	}
	want := []Alert{
		{
			ID: "hook-rate", Name: "Hook success rate", Destination: "hook", Source: "web", Enabled: true,
			Kind: SuccessRateBelow, Threshold: 0.9, Window: Duration(15 * time.Minute), MinEvents: DefaultAlertMinEvents,
			Notify: AlertNotify{URL: "https://hooks.example.com/a", Headers: map[string]string{"Authorization": "Bearer word", "X-Team": "delivery"}},
			Origin: OriginFile,
		},
		{
			ID: "discards", Name: "discards", Enabled: false, Kind: DiscardsAbove, Threshold: 0, Window: Duration(time.Hour),
			Notify: AlertNotify{URL: "http://127.0.0.1:9000/hook"}, Origin: OriginFile,
		},
		{
			ID: "spike", Name: "spike", Enabled: true, Kind: DiscardsChange, Threshold: 150.5, Window: Duration(5 * time.Minute),
			MinEvents: 3, Notify: AlertNotify{URL: "https://hooks.example.com/b"}, Origin: OriginFile,
		},
	}
	if !reflect.DeepEqual(cfg.Alerts, want) {
		t.Errorf("Alerts =\n%+v\nwant\n%+v", cfg.Alerts, want)
	}
}

// TestAlertValidate checks each rule of Alert.Validate on an API-shaped
// rule (no prefix), and that every problem is reported at once.
func TestAlertValidate(t *testing.T) {
	good := func() Alert {
		return Alert{ID: "a", Kind: SuccessRateBelow, Threshold: 0.95, Window: Duration(5 * time.Minute), Enabled: true,
			Notify: AlertNotify{URL: "https://h.example.com/x"}}
	}
	tests := []struct {
		name   string
		change func(*Alert)
		// want maps each expected path to a part of its message; nil: valid.
		want map[string]string
	}{
		{"valid", func(*Alert) {}, nil},
		{"rate of 1", func(a *Alert) { a.Threshold = 1 }, nil},
		{"discards above 0", func(a *Alert) { a.Kind, a.Threshold, a.MinEvents = DiscardsAbove, 0, 0 }, nil},
		{"change in percent", func(a *Alert) { a.Kind, a.Threshold = DiscardsChange, 250 }, nil},
		{"a day", func(a *Alert) { a.Window = Duration(24 * time.Hour) }, nil},
		{"headers", func(a *Alert) { a.Notify.Headers = map[string]string{"Authorization": "Bearer x\ty", "X-Ok!": ""} }, nil},
		{"no id", func(a *Alert) { a.ID = "" }, map[string]string{"id": "required"}},
		{"bad id", func(a *Alert) { a.ID = "A B" }, map[string]string{"id": "is not a valid id"}},
		{"reserved id", func(a *Alert) { a.ID = "events" }, map[string]string{"id": "reserved"}},
		{"long name", func(a *Alert) { a.Name = strings.Repeat("n", MaxNameLen+1) }, map[string]string{"name": "longer than 200"}},
		{"bad destination", func(a *Alert) { a.Destination = "Hook!" }, map[string]string{"destination": "not a valid id"}},
		{"bad source", func(a *Alert) { a.Source = "-" }, map[string]string{"source": "not a valid id"}},
		{"no kind", func(a *Alert) { a.Kind = "" }, map[string]string{"kind": "required"}},
		{"unknown kind", func(a *Alert) { a.Kind = "latency_above" }, map[string]string{"kind": `"latency_above" is not a kind`}},
		{"rate 0", func(a *Alert) { a.Threshold = 0 }, map[string]string{"threshold": "0 is out of range"}},
		{"rate above 1", func(a *Alert) { a.Threshold = 95 }, map[string]string{"threshold": "95 is out of range"}},
		{"rate NaN", func(a *Alert) { a.Threshold = math.NaN() }, map[string]string{"threshold": "NaN is out of range"}},
		{"negative discards", func(a *Alert) { a.Kind, a.Threshold, a.MinEvents = DiscardsAbove, -1, 0 }, map[string]string{"threshold": "-1 is out of range"}},
		{"fractional discards", func(a *Alert) { a.Kind, a.Threshold, a.MinEvents = DiscardsAbove, 0.5, 0 }, map[string]string{"threshold": "whole number"}},
		{"change 0", func(a *Alert) { a.Kind, a.Threshold, a.MinEvents = DiscardsChange, 0, 20 }, map[string]string{"threshold": "percentage above 0"}},
		{"change too big", func(a *Alert) { a.Kind, a.Threshold, a.MinEvents = DiscardsChange, 2e6, 20 }, map[string]string{"threshold": "at most 1000000"}},
		{"no window", func(a *Alert) { a.Window = 0 }, map[string]string{"window": "required"}},
		{"window 59s", func(a *Alert) { a.Window = Duration(59 * time.Second) }, map[string]string{"window": "59s is out of range: 1m to 24h"}},
		{"window 24h1m", func(a *Alert) { a.Window = Duration(24*time.Hour + time.Minute) }, map[string]string{"window": "24h1m is out of range"}},
		{"window 5m30s", func(a *Alert) { a.Window = Duration(330 * time.Second) }, map[string]string{"window": "not a whole number of minutes"}},
		{"min events 0", func(a *Alert) { a.MinEvents = 0 }, map[string]string{"min_events": "0 is out of range: 1 to"}},
		{"min events too many", func(a *Alert) { a.MinEvents = MaxAlertMinEvents + 1 }, map[string]string{"min_events": "out of range"}},
		{"min events on discards_above", func(a *Alert) { a.Kind, a.Threshold, a.MinEvents = DiscardsAbove, 5, 20 }, map[string]string{"min_events": "does not apply"}},
		{"no url", func(a *Alert) { a.Notify.URL = "" }, map[string]string{"notify.url": "required"}},
		{"relative url", func(a *Alert) { a.Notify.URL = "/hook" }, map[string]string{"notify.url": "absolute http or https"}},
		{"url without host", func(a *Alert) { a.Notify.URL = "https:///x" }, map[string]string{"notify.url": "must include a host"}},
		{"long url", func(a *Alert) { a.Notify.URL = "https://h.example.com/" + strings.Repeat("x", MaxAlertURLLen) }, map[string]string{"notify.url": "longer than"}},
		{"header name", func(a *Alert) { a.Notify.Headers = map[string]string{"X:Y": "v"} }, map[string]string{"notify.headers.X:Y": "not a header name"}},
		{"header value", func(a *Alert) { a.Notify.Headers = map[string]string{"X-A": "v\r\nX-B: w"} }, map[string]string{"notify.headers.X-A": "control character"}},
		{"too many headers", func(a *Alert) {
			a.Notify.Headers = map[string]string{}
			for i := range MaxAlertHeaders + 1 {
				a.Notify.Headers["X-"+strings.Repeat("h", i+1)] = "v"
			}
		}, map[string]string{"notify.headers": "at most 50"}},
		{"everything at once", func(a *Alert) { *a = Alert{ID: "events", Kind: DiscardsAbove, Threshold: -3, MinEvents: 2} }, map[string]string{
			"id": "reserved", "threshold": "out of range", "window": "required", "min_events": "does not apply", "notify.url": "required",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good()
			a.normalize()
			tt.change(&a)
			got := map[string]string{}
			for _, fe := range a.Validate("") {
				if _, dup := got[fe.Path]; dup {
					t.Errorf("two problems at %s", fe.Path)
				}
				got[fe.Path] = fe.Message
			}
			if len(got) != len(tt.want) {
				t.Errorf("problems %v, want %v", got, tt.want)
			}
			for path, part := range tt.want {
				if !strings.Contains(got[path], part) {
					t.Errorf("%s: %q, want it to contain %q", path, got[path], part)
				}
			}
		})
	}
	// The prefix leads every path.
	a := Alert{}
	for _, fe := range a.Validate("alerts[3]") {
		if !strings.HasPrefix(fe.Path, "alerts[3].") {
			t.Errorf("path %q lacks the prefix", fe.Path)
		}
	}
}

// TestAlertDefaults checks normalize: the name, and MinEvents only where
// it applies.
func TestAlertDefaults(t *testing.T) {
	for _, k := range AlertKinds {
		a := Alert{ID: "x", Kind: k, Notify: AlertNotify{Headers: map[string]string{}}}
		a.normalize()
		wantMin := int64(DefaultAlertMinEvents)
		if k == DiscardsAbove {
			wantMin = 0
		}
		if a.Name != "x" || a.MinEvents != wantMin || a.Notify.Headers != nil {
			t.Errorf("%s: normalized to %+v", k, a)
		}
	}
}

// TestAlertJSON pins the rule's JSON, as the Config API answers it and
// the state store keeps it.
func TestAlertJSON(t *testing.T) {
	a := Alert{ID: "a", Name: "A", Kind: DiscardsChange, Threshold: 200, Window: Duration(5 * time.Minute), MinEvents: 20, Enabled: true,
		Notify: AlertNotify{URL: "https://h.example.com", Headers: map[string]string{"X-A": "b"}}}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"a","name":"A","enabled":true,"kind":"discards_change","threshold":200,"window":"5m","min_events":20,"notify":{"url":"https://h.example.com","headers":{"X-A":"b"}}}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
}
