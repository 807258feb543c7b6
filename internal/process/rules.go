package process

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/plan"
)

// Rules is the pipeline of a workspace: each source's tracking plan, with
// the source's enforcement, then its transformations. An event of a source
// with neither goes on byte for byte; otherwise it is decoded once, checked
// and transformed in place, and encoded once.
//
// Blocked events are forwarded, unchanged, to the source's
// forward_blocked_to source when it has one; violations become "Violation
// Generated" events of the forward_violations_to source. Both are written
// straight to processed under that source (they do not pass through its
// plan), in the same message as the rest of the group, so that a crash
// can neither lose nor repeat them.
type Rules struct {
	current    func() *config.Workspace
	functions  Inserter
	violations *Violations
	now        func() time.Time
	logger     *slog.Logger
	// bufs holds encode buffers: Emit copies what it is given.
	bufs sync.Pool
}

// NewRules returns the pipeline of the live workspace current returns.
// Violations are recorded in v (nil: not recorded).
func NewRules(current func() *config.Workspace, v *Violations, logger *slog.Logger) *Rules {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Rules{current: current, violations: v, now: time.Now, logger: logger}
}

// WithFunctions makes r run the sources' insert functions with f, after
// their plans and transformations; without it, insert functions are not
// run (the events go on as if there were none). It returns r.
func (r *Rules) WithFunctions(f Inserter) *Rules {
	r.functions = f
	return r
}

// Process implements [Pipeline].
func (r *Rules) Process(ctx context.Context, src string, rec []byte, out Emitter) Outcome {
	ws := r.current()
	rules := ws.SourceRules(src)
	if rules.InsertFunction == nil || r.functions == nil {
		return r.process(ws, rules, src, rec, out)
	}
	// The insert function gets the event as the plan and the
	// transformations leave it.
	var kept []byte
	inner := out
	inner.self = func(_ string, b []byte) { kept = append(kept[:0], b...) }
	outcome := r.process(ws, rules, src, rec, inner)
	if outcome != OutcomeProcessed || kept == nil {
		return outcome
	}
	return r.insert(ctx, rules.InsertFunction, src, kept, out)
}

func (r *Rules) process(ws *config.Workspace, rules *config.SourceRules, src string, rec []byte, out Emitter) Outcome {
	if rules.Plan == nil && len(rules.Transformations) == 0 {
		out.Emit(rec)
		return OutcomeProcessed
	}
	// Decode only what the rules read; the rest is copied as it was.
	var want func(string) bool
	if reads := rules.Reads; reads != nil {
		want = func(k string) bool { return slices.Contains(reads, k) }
	}
	doc, members, err := event.DecodeSelected(rec, want)
	if err != nil {
		// The Tracking API stored it, so it is an object; keep it as it is
		// rather than lose it.
		r.logger.Warn("event not decodable; passed on unchanged", "source", src, "err", err)
		out.Emit(rec)
		return OutcomeProcessed
	}
	// changed gathers the top-level fields the plan and the transformations
	// may have modified; the others are copied from rec as they were.
	var changed []string
	if rules.Plan != nil {
		res := rules.Plan.Check(doc, rules.Enforcement)
		if len(res.Violations) > 0 {
			r.report(ws, src, rules, doc, res, out)
		}
		if res.Verdict == plan.VerdictBlock {
			if rules.ForwardBlockedTo != "" {
				out.Forward(rules.ForwardBlockedTo, rec)
			}
			return OutcomeBlocked
		}
		if len(res.Violations) > 0 || len(res.Omitted) > 0 || len(res.OmittedOnViolation) > 0 {
			changed = append(changed, "properties", "traits", "context")
		}
	}
	if len(rules.Transformations) > 0 {
		n, err := rules.Transformations.Apply(doc)
		if err != nil {
			r.logger.Debug("transformation failed; event kept as it was before it", "source", src, "err", err)
		}
		if n > 0 {
			changed = append(changed, rules.Writes...)
		}
	}
	if len(changed) == 0 {
		out.Emit(rec)
		return OutcomeProcessed
	}
	// The plan wrote context.protocols into a new context object when the
	// event's own was left undecoded: merge the two.
	if raw, ok := members.Undecoded("context"); ok {
		if ctx, wrote := doc["context"].(map[string]any); wrote {
			if orig, err := event.Decode(raw); err == nil {
				maps.Copy(orig, ctx)
				doc["context"] = orig
			}
		}
	}
	bp, _ := r.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer r.bufs.Put(bp)
	b, err := event.EncodeSplice((*bp)[:0], doc, members, func(k string) bool { return slices.Contains(changed, k) })
	*bp = b
	if err != nil {
		r.logger.Warn("event not encodable after processing; passed on unchanged", "source", src, "err", err)
		out.Emit(rec)
		return OutcomeProcessed
	}
	out.Emit(b)
	return OutcomeProcessed
}

// report records an event's violations and forwards them when the source
// asks for it.
func (r *Rules) report(ws *config.Workspace, src string, rules *config.SourceRules, doc event.Doc, res plan.Result, out Emitter) {
	typ, name := eventName(doc)
	now := r.now()
	if r.violations != nil {
		viols := slices.Clone(res.Violations)
		out.Defer(func() {
			for _, v := range viols {
				r.violations.Record(src, typ, name, v, now)
			}
		})
	}
	if rules.ForwardViolationsTo == "" {
		return
	}
	info := plan.SourceInfo{ID: src, Name: src, Slug: src}
	if s, ok := ws.Source(src); ok && s.Name != "" {
		info.Name = s.Name
	}
	for _, v := range res.Violations {
		b, err := event.Encode(nil, rules.Plan.ViolationEvent(doc, v, info, now))
		if err != nil {
			r.logger.Warn("encoding a violation event", "source", src, "err", err)
			continue
		}
		out.Forward(rules.ForwardViolationsTo, b)
	}
}

// eventName returns an event's type and its name: the event of a track,
// the name of a page or screen, "" otherwise.
func eventName(doc event.Doc) (typ, name string) {
	typ, _ = doc["type"].(string)
	switch typ {
	case event.Track:
		name, _ = doc["event"].(string)
	case event.Page, event.Screen:
		name, _ = doc["name"].(string)
	}
	return typ, name
}
