package function

import (
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/dop251/goja"
)

//go:embed prelude.js
var preludeSource string

// prelude is compiled once; a compiled program is immutable and shared by
// every interpreter.
var prelude = goja.MustCompile("prelude.js", preludeSource, true)

// maxCallStack bounds recursion, so that runaway recursion is an error of
// the call rather than of the process.
const maxCallStack = 2048

// vm is one interpreter with the globals, loaded with one program. It is
// used by one call at a time.
type vm struct {
	rt       *goja.Runtime
	runner   *Runner // nil: fetch is refused (compiling)
	prog     *Program
	call     *call // the call running, nil between calls
	settings goja.Value
	parse    goja.Callable
	strfy    goja.Callable
	classes  map[string]*goja.Object
	// broken is set when a call was interrupted: the interpreter's state
	// may be half-changed, so it is not pooled again.
	broken bool
}

// errTimeout and errMemory are what an interrupted call was stopped for.
var (
	errTimeout = errors.New("the function did not finish within its time limit")
	errMemory  = errors.New("the function exceeded its memory limit")
)

func newVM(r *Runner) *vm {
	v := &vm{rt: goja.New(), runner: r, classes: map[string]*goja.Object{}}
	v.rt.SetMaxCallStackSize(maxCallStack)
	g := v.rt.GlobalObject()
	must(g.Set("__fetch", v.fetch))
	must(g.Set("__digest", v.digest))
	must(g.Set("__bytes", v.bytes))
	must(g.Set("__emit", v.emit))
	must(g.Set("__log", v.log))
	must(g.Set("__timer", v.timer))
	must(g.Set("__uuid", newUUID))
	if _, err := v.rt.RunProgram(prelude); err != nil {
		panic(fmt.Sprintf("function: the prelude does not run: %v", err))
	}
	for _, n := range []string{"EventNotSupported", "InvalidEventPayload", "ValidationError", "RetryError", "DropEvent", "InvalidSettings"} {
		v.classes[n] = g.Get(n).ToObject(v.rt)
	}
	json := g.Get("JSON").ToObject(v.rt)
	v.parse, _ = goja.AssertFunction(json.Get("parse"))
	v.strfy, _ = goja.AssertFunction(json.Get("stringify"))
	return v
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// load runs p's top-level code, and the Segment object for source
// functions, in the interpreter. Top-level code runs under the program's
// time limit too.
func (v *vm) load(p *Program) error {
	v.prog = p
	if p.spec.Kind == KindSource {
		seg := v.rt.NewObject()
		for _, typ := range []string{"track", "identify", "page", "screen", "group", "alias", "set"} {
			must(seg.Set(typ, func(c goja.FunctionCall) goja.Value { return v.emit(typ, c.Argument(0)) }))
		}
		must(v.rt.GlobalObject().Set("Segment", seg))
	}
	c := &call{deadline: time.Now().Add(p.spec.Timeout)}
	v.call = c
	stop := time.AfterFunc(p.spec.Timeout, func() { v.rt.Interrupt(errTimeout) })
	_, err := v.rt.RunProgram(p.prog)
	stop.Stop()
	v.call = nil
	v.rt.ClearInterrupt()
	if err != nil {
		return describe(err)
	}
	s, err := v.parse(goja.Undefined(), v.rt.ToValue(p.settings))
	if err != nil {
		return fmt.Errorf("reading the settings: %w", err)
	}
	v.settings = s
	return nil
}

// handler returns the global function named name, or nil.
func (v *vm) handler(name string) goja.Callable {
	f, ok := goja.AssertFunction(v.rt.GlobalObject().Get(name))
	if !ok {
		return nil
	}
	return f
}

// describe turns an error of the interpreter into one whose message says
// where the code failed.
func describe(err error) error {
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return errors.New(ex.String())
	}
	return err
}

func (v *vm) close() {
	v.rt.ClearInterrupt()
}
