package function

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// Kind is what a function is for; it decides which handlers it must define.
type Kind string

// The kinds of function.
const (
	// KindSource: onRequest(request, settings) turns an HTTP request into
	// events with Segment.track(…) and the other emit calls.
	KindSource Kind = "source"
	// KindDestination: onTrack, onIdentify, … and onBatch send events on.
	KindDestination Kind = "destination"
	// KindInsert: the destination handlers, returning the event (changed
	// or not) to keep it; on a source or before a destination.
	KindInsert Kind = "insert"
)

// Kinds are the valid kinds, for error messages.
var Kinds = []Kind{KindSource, KindDestination, KindInsert}

// Handlers of destination and insert functions, by event type.
var eventHandlers = map[string]string{
	"track": "onTrack", "identify": "onIdentify", "page": "onPage", "screen": "onScreen",
	"group": "onGroup", "alias": "onAlias", "delete": "onDelete",
}

// Limits of a function's time per call.
const (
	DefaultTimeout = 5 * time.Second
	MaxTimeout     = 60 * time.Second
)

// Spec is one version of a function, as the workspace stores it.
type Spec struct {
	// ID names the function in logs, metrics and errors.
	ID string
	// Version is the stored version the spec is (0 when not stored).
	Version int
	Kind    Kind
	// Code is the JavaScript source.
	Code string
	// Settings are handed to every handler as its settings argument
	// (secrets included); nil is an empty object.
	Settings map[string]any
	// AllowedHosts are the hosts (host or host:port; "*.example.com"
	// matches subdomains) fetch may reach; empty: fetch is refused.
	AllowedHosts []string
	// Timeout bounds one call; zero: DefaultTimeout.
	Timeout time.Duration
}

// Program is a compiled, immutable function version. It is safe for
// concurrent use; a [Runner] executes it.
type Program struct {
	spec     Spec
	prog     *goja.Program
	settings string // JSON
	handlers map[string]bool
	hash     string
}

// Compile checks and compiles s: its kind, its code (a syntax error names
// line and column), and that the code defines the handlers its kind needs:
// onRequest for a source function, at least one event handler (or onBatch)
// for the others. Top-level code runs once here, in a fresh interpreter
// with the usual globals and fetch refused, to find the handlers.
func Compile(s Spec) (*Program, error) {
	if !slices.Contains(Kinds, s.Kind) {
		return nil, fmt.Errorf("kind %q is not one of %v", s.Kind, Kinds)
	}
	if strings.TrimSpace(s.Code) == "" {
		return nil, errors.New("the code is empty")
	}
	if s.Timeout < 0 || s.Timeout > MaxTimeout {
		return nil, fmt.Errorf("timeout %s is out of range (0 for %s, at most %s)", s.Timeout, DefaultTimeout, MaxTimeout)
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	for _, h := range s.AllowedHosts {
		if err := checkHostPattern(h); err != nil {
			return nil, err
		}
	}
	settings := s.Settings
	if settings == nil {
		settings = map[string]any{}
	}
	sj, err := json.Marshal(settings)
	if err != nil {
		return nil, fmt.Errorf("the settings are not JSON: %w", err)
	}
	// Not strict: Node runs a function's code as a script, sloppy unless
	// it says "use strict" (for (i = 0; …) without a declaration works).
	prog, err := goja.Compile(s.ID, s.Code, false)
	if err != nil {
		return nil, fmt.Errorf("the code does not compile: %w", err)
	}
	p := &Program{spec: s, prog: prog, settings: string(sj), handlers: map[string]bool{}}
	sum := sha256.New()
	for _, part := range []string{string(s.Kind), s.Code, p.settings, strings.Join(s.AllowedHosts, ","), s.Timeout.String()} {
		sum.Write([]byte(part))
		sum.Write([]byte{0})
	}
	p.hash = hex.EncodeToString(sum.Sum(nil))
	if err := p.findHandlers(); err != nil {
		return nil, err
	}
	return p, nil
}

// ID is the function's id; Version its stored version; Kind its kind.
func (p *Program) ID() string { return p.spec.ID }

// Version is the stored version the program was compiled from.
func (p *Program) Version() int { return p.spec.Version }

// Kind is the program's kind.
func (p *Program) Kind() Kind { return p.spec.Kind }

// Timeout is the limit of one call.
func (p *Program) Timeout() time.Duration { return p.spec.Timeout }

// Handles reports whether the program defines a handler for events of
// type typ (track, identify, …, delete), or onBatch when typ is "batch".
func (p *Program) Handles(typ string) bool {
	if typ == "batch" {
		return p.handlers["onBatch"]
	}
	return p.handlers[eventHandlers[typ]]
}

// Hash identifies the program's content (kind, code, settings, hosts,
// timeout): two programs with the same hash behave the same.
func (p *Program) Hash() string { return p.hash }
