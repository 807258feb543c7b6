package config

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"time"
)

// AlertKind is what an [Alert] watches.
type AlertKind string

// The kinds of alert rule.
const (
	// SuccessRateBelow fires when, over the window, the share of events
	// that reached a final outcome and were delivered (delivered ÷
	// (delivered + discarded + expired)) is below Threshold, a fraction
	// from 0 to 1, while at least MinEvents reached a final outcome.
	SuccessRateBelow AlertKind = "success_rate_below"
	// DiscardsAbove fires when more than Threshold events were discarded
	// over the window.
	DiscardsAbove AlertKind = "discards_above"
	// DiscardsChange fires when the events discarded over the last window
	// exceed those of the window before it by at least MinEvents and by
	// at least Threshold percent (of the earlier count, taken as 1 when it
	// is 0): a spike in refused events.
	DiscardsChange AlertKind = "discards_change"
)

// AlertKinds are the kinds an [Alert] may have, in documentation order.
var AlertKinds = []AlertKind{SuccessRateBelow, DiscardsAbove, DiscardsChange}

// The ranges of an [Alert]'s fields.
const (
	// MinAlertWindow and MaxAlertWindow bound an alert's window, which is
	// a whole number of minutes (the delivery metrics' finest buckets).
	MinAlertWindow = time.Minute
	MaxAlertWindow = 24 * time.Hour
	// DefaultAlertMinEvents is the MinEvents of a success_rate_below or
	// discards_change rule that does not set it: enough that an idle
	// destination, or a lone failure, does not fire.
	DefaultAlertMinEvents = 20
	// MaxAlertMinEvents bounds MinEvents.
	MaxAlertMinEvents = 1_000_000_000
	// MaxAlertDiscards bounds the threshold of a discards_above rule.
	MaxAlertDiscards = 1_000_000_000_000
	// MaxAlertChangePercent bounds the threshold of a discards_change
	// rule.
	MaxAlertChangePercent = 1_000_000
	// MaxAlertHeaders bounds the headers of a notification.
	MaxAlertHeaders = 50
	// MaxAlertURLLen bounds a notification URL.
	MaxAlertURLLen = 2048
)

// ReservedAlertID cannot be an alert's id: GET /api/v1/alerts/events
// lists the alerts' firing and resolved events.
const ReservedAlertID = "events"

// Alert is an alert rule over the delivery metrics: when its condition
// starts to hold it fires, when it stops holding it resolves, and each of
// the two is POSTed to its webhook. The evaluator (internal/observe/alert)
// owns what happens at run time; this is the rule as declared.
type Alert struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Destination narrows the rule to one destination's deliveries; empty:
	// the deliveries to every destination, counted together.
	Destination string `json:"destination,omitempty"`
	// Source narrows the rule to one source's events; empty: all sources.
	Source string `json:"source,omitempty"`
	// Enabled: a disabled rule is not evaluated, and resolves if it was
	// firing. Default: true.
	Enabled bool      `json:"enabled"`
	Kind    AlertKind `json:"kind"`
	// Threshold is a fraction from 0 (exclusive) to 1 for
	// success_rate_below, a count of events (0 or more, whole) for
	// discards_above, and a percentage above 0 for discards_change.
	Threshold float64 `json:"threshold"`
	// Window is how far back the rule looks: whole minutes, 1m to 24h.
	Window Duration `json:"window"`
	// MinEvents is, for success_rate_below, how many events must have
	// reached a final outcome over the window, and for discards_change by
	// how many events the discards must have grown, for the rule to fire;
	// 1 to 10^9. Default: [DefaultAlertMinEvents]. It does not apply to
	// discards_above (0).
	MinEvents int64 `json:"min_events,omitempty"`
	// Notify is where firing and resolved events are sent.
	Notify AlertNotify `json:"notify"`
	// Origin says who declared the rule: "file" or "api".
	Origin    string    `json:"origin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// AlertNotify is the webhook an alert's events are POSTed to as JSON.
type AlertNotify struct {
	// URL is an absolute http or https URL. Required.
	URL string `json:"url"`
	// Headers are added to every request, e.g. an Authorization header.
	// At most [MaxAlertHeaders].
	Headers map[string]string `json:"headers,omitempty"`
}

// usesMinEvents reports whether MinEvents applies to kind.
func (k AlertKind) usesMinEvents() bool { return k == SuccessRateBelow || k == DiscardsChange }

// normalize fills a's defaults: its name (the id) and its MinEvents.
func (a *Alert) normalize() {
	if a.Name == "" {
		a.Name = a.ID
	}
	if a.Kind.usesMinEvents() && a.MinEvents == 0 {
		a.MinEvents = DefaultAlertMinEvents
	}
	if len(a.Notify.Headers) == 0 {
		a.Notify.Headers = nil
	}
}

// Validate reports every problem of an alert rule, with paths prefixed by
// prefix (e.g. "alerts[0]"; empty for an API body). It expects the
// defaults filled in, as the loader and the [Repo] do. Whether Destination
// and Source exist is the caller's call.
func (a *Alert) Validate(prefix string) []*FieldError {
	var errs []*FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Path: joinPath(prefix, field), Message: fmt.Sprintf(format, args...)})
	}
	if m := ValidateID(a.ID); m != "" {
		add("id", "%s", m)
	} else if a.ID == ReservedAlertID {
		add("id", "%q is reserved: GET /api/v1/alerts/events lists alert events", a.ID)
	}
	if len(a.Name) > MaxNameLen {
		add("name", "longer than %d characters", MaxNameLen)
	}
	if a.Destination != "" {
		if m := ValidateID(a.Destination); m != "" {
			add("destination", "%s", m)
		}
	}
	if a.Source != "" {
		if m := ValidateID(a.Source); m != "" {
			add("source", "%s", m)
		}
	}
	t := a.Threshold
	switch a.Kind {
	case "":
		add("kind", "required: one of %s", kindList())
	case SuccessRateBelow:
		// Written so that NaN fails too.
		if !(t > 0 && t <= 1) {
			add("threshold", "%v is out of range: a fraction above 0 and at most 1 (0.95 is 95%%)", t)
		}
	case DiscardsAbove:
		if !(t >= 0 && t <= MaxAlertDiscards) || t != math.Trunc(t) {
			add("threshold", "%v is out of range: a whole number of discarded events, 0 to %d", t, int64(MaxAlertDiscards))
		}
	case DiscardsChange:
		if !(t > 0 && t <= MaxAlertChangePercent) {
			add("threshold", "%v is out of range: a percentage above 0 and at most %d (100 fires when the discards double)", t, MaxAlertChangePercent)
		}
	default:
		add("kind", "%q is not a kind of alert: use %s", a.Kind, kindList())
	}
	if w := time.Duration(a.Window); w == 0 {
		add("window", "required: a duration in whole minutes, 1m to 24h, such as 5m or 1h")
	} else if w < MinAlertWindow || w > MaxAlertWindow {
		add("window", "%s is out of range: %s to %s", a.Window, Duration(MinAlertWindow), Duration(MaxAlertWindow))
	} else if w%time.Minute != 0 {
		add("window", "%s is not a whole number of minutes: delivery metrics are counted per minute", a.Window)
	}
	switch {
	case a.Kind.usesMinEvents() && (a.MinEvents < 1 || a.MinEvents > MaxAlertMinEvents):
		add("min_events", "%d is out of range: 1 to %d (left out: %d)", a.MinEvents, MaxAlertMinEvents, DefaultAlertMinEvents)
	case a.Kind == DiscardsAbove && a.MinEvents != 0:
		add("min_events", "does not apply to %s rules: only to %s and %s", a.Kind, SuccessRateBelow, DiscardsChange)
	}
	errs = append(errs, a.Notify.validate(joinPath(prefix, "notify"))...)
	return errs
}

func kindList() string {
	s := ""
	for i, k := range AlertKinds {
		switch {
		case i == len(AlertKinds)-1:
			s += " or "
		case i > 0:
			s += ", "
		}
		s += string(k)
	}
	return s
}

// validate reports the problems of a notification webhook under prefix.
func (n *AlertNotify) validate(prefix string) []*FieldError {
	var errs []*FieldError
	if m := checkNotifyURL(n.URL); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "url"), Message: m})
	}
	if len(n.Headers) > MaxAlertHeaders {
		errs = append(errs, &FieldError{Path: join(prefix, "headers"), Message: fmt.Sprintf("%d headers: at most %d", len(n.Headers), MaxAlertHeaders)})
	}
	for _, k := range slices.Sorted(maps.Keys(n.Headers)) {
		p := join(join(prefix, "headers"), k)
		switch {
		case !isToken(k):
			errs = append(errs, &FieldError{Path: p, Message: "not a header name: use letters, digits and !#$%&'*+-.^_`|~"})
		case !validHeaderValue(n.Headers[k]):
			errs = append(errs, &FieldError{Path: p, Message: "the value holds a control character"})
		}
	}
	return errs
}

// checkNotifyURL returns what is wrong with a notification URL, or "".
func checkNotifyURL(s string) string {
	if s == "" {
		return "required: the URL that firing and resolved events are POSTed to"
	}
	if len(s) > MaxAlertURLLen {
		return fmt.Sprintf("longer than %d characters", MaxAlertURLLen)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an absolute http or https URL, like https://hooks.example.com/conflux"
	case u.Host == "" || u.Opaque != "":
		return "must include a host, like https://hooks.example.com/conflux"
	}
	return ""
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), as a
// header name must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c < 0x80 && c > ' ' && c != 0x7f && !isSeparator(c):
		default:
			return false
		}
	}
	return true
}

func isSeparator(c byte) bool {
	switch c {
	case '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}', '"':
		return true
	}
	return false
}

// validHeaderValue reports whether v has no control characters but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Alert states.
const (
	AlertOK     = "ok"
	AlertFiring = "firing"
)

// AlertState is an alert rule's run-time state, as its evaluator keeps it.
type AlertState struct {
	// State is [AlertOK] or [AlertFiring].
	State string `json:"state"`
	// Since is when the rule entered State; nil before its first
	// evaluation.
	Since *time.Time `json:"since"`
	// LastValue is what the last evaluation measured (a success rate, a
	// count of discards, a change in percent); nil when there was nothing
	// to measure (too few events for a success rate) or before the first
	// evaluation.
	LastValue *float64 `json:"last_value"`
	// EvaluatedAt is the last evaluation's time; nil before the first.
	EvaluatedAt *time.Time `json:"evaluated_at"`
}

// AlertStates reports the run-time state of alert rules, so that the
// Config API can list each rule with it. The evaluator implements it.
type AlertStates interface {
	// AlertStates returns the state of every rule evaluated so far, by
	// rule id; a rule not in the map has not been evaluated yet. It is
	// safe for concurrent use, honours ctx, and returns an error only
	// when the state cannot be read.
	AlertStates(ctx context.Context) (map[string]AlertState, error)
}
