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
	rt     *goja.Runtime
	runner *Runner // nil: fetch is refused (compiling)
	prog   *Program
	call   *call // the call running, nil between calls
	// parse and strfy are the interpreter's JSON.parse(text) and
	// JSON.stringify(value), called from Go.
	parse        goja.Callable
	strfy        goja.Callable
	arrayIsArray goja.Callable
	syntaxError  *goja.Object
	rangeErr     *goja.Object
	objectProto  *goja.Object
	jsonBuf      []byte // JSON.stringify's, between calls
	// protectFn runs pending as a native: see protect.
	protectFn goja.Callable
	pending   func()
	classes   map[string]*goja.Object
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
	// The natives take goja.FunctionCall: a Go function of other
	// arguments is called through reflection, a microsecond or two a call.
	str := func(c goja.FunctionCall, i int) string { return c.Argument(i).String() }
	must(g.Set("__fetch", func(c goja.FunctionCall) goja.Value {
		return v.fetch(str(c, 0), str(c, 1), v.pairs(c.Argument(2)), c.Argument(3))
	}))
	must(g.Set("__digest", func(c goja.FunctionCall) goja.Value {
		return v.rt.ToValue(v.digest(str(c, 0), c.Argument(1), str(c, 2), str(c, 3)))
	}))
	must(g.Set("__bytes", func(c goja.FunctionCall) goja.Value {
		return v.rt.ToValue(v.bytes(str(c, 0), str(c, 1), str(c, 2)))
	}))
	must(g.Set("__emit", func(c goja.FunctionCall) goja.Value { return v.emit(str(c, 0), c.Argument(1)) }))
	must(g.Set("__log", func(c goja.FunctionCall) goja.Value {
		v.log(str(c, 0), str(c, 1))
		return goja.Undefined()
	}))
	must(g.Set("__timer", func(c goja.FunctionCall) goja.Value {
		return v.timer(c.Argument(0), c.Argument(1).ToFloat(), c.Argument(2).ToBoolean())
	}))
	must(g.Set("__uuid", func(goja.FunctionCall) goja.Value { return v.rt.ToValue(newUUID()) }))
	parse := v.rt.ToValue(v.jsonParse)
	strfy := v.rt.ToValue(v.jsonStringify)
	must(g.Set("__parse", parse))
	must(g.Set("__stringify", strfy))
	v.parse, _ = goja.AssertFunction(parse)
	v.strfy, _ = goja.AssertFunction(strfy)
	v.syntaxError = g.Get("SyntaxError").ToObject(v.rt)
	v.rangeErr = g.Get("RangeError").ToObject(v.rt)
	v.objectProto = v.rt.NewObject().Prototype()
	v.arrayIsArray, _ = goja.AssertFunction(g.Get("Array").ToObject(v.rt).Get("isArray"))
	v.protectFn, _ = goja.AssertFunction(v.rt.ToValue(func(goja.FunctionCall) goja.Value {
		f := v.pending
		v.pending = nil
		f()
		return goja.Undefined()
	}))
	if _, err := v.rt.RunProgram(prelude); err != nil {
		panic(fmt.Sprintf("function: the prelude does not run: %v", err))
	}
	for _, n := range []string{"EventNotSupported", "InvalidEventPayload", "ValidationError", "RetryError", "DropEvent", "InvalidSettings"} {
		v.classes[n] = g.Get(n).ToObject(v.rt)
	}
	return v
}

// jsonParse is JSON.parse(text) without a reviver.
func (v *vm) jsonParse(c goja.FunctionCall) goja.Value {
	val, err := parseJSON(v.rt, v.objectProto, c.Argument(0).String())
	if err != nil {
		if je, ok := err.(*jsonError); ok {
			panic(v.newError(v.syntaxError, je.msg))
		}
		panic(err)
	}
	return val
}

// jsonStringify is JSON.stringify(value, replacer, space).
func (v *vm) jsonStringify(c goja.FunctionCall) goja.Value {
	s, ok := v.stringify(c.Argument(0), c.Argument(1), c.Argument(2))
	if !ok {
		return goja.Undefined()
	}
	return v.rt.ToValue(s)
}

func (v *vm) newError(ctor *goja.Object, msg string) *goja.Object {
	e, err := v.rt.New(ctor, v.rt.ToValue(msg))
	if err != nil {
		panic(err)
	}
	return e
}

func (v *vm) rangeError(msg string) *goja.Object { return v.newError(v.rangeErr, msg) }

// pairs reads an array of [name, value] arrays.
func (v *vm) pairs(val goja.Value) [][]string {
	arr, ok := val.(*goja.Object)
	if !ok {
		return nil
	}
	n := int(arr.Get("length").ToInteger())
	out := make([][]string, 0, n)
	for i := range n {
		p, ok := arr.Get(index(int64(i))).(*goja.Object)
		if !ok {
			continue
		}
		out = append(out, []string{p.Get("0").String(), p.Get("1").String()})
	}
	return out
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
	c := &call{deadline: time.Now().Add(p.spec.Timeout), loading: true}
	v.call = c
	stop := time.AfterFunc(p.spec.Timeout, func() { v.rt.Interrupt(errTimeout) })
	_, err := v.rt.RunProgram(p.prog)
	if !stop.Stop() && err == nil {
		// The interrupt may yet land, after ClearInterrupt: the
		// interpreter's first call would stop at once.
		err = errTimeout
	}
	v.call = nil
	v.rt.ClearInterrupt()
	if err != nil {
		return v.describe(err)
	}
	if _, err := v.callSettings(); err != nil {
		return fmt.Errorf("reading the settings: %w", err)
	}
	return nil
}

// callSettings is the settings argument of one call: a new object each
// call, as each invocation gets in Segment, so that a handler changing
// its settings (deleting a secret once used) does not change the next
// call's.
func (v *vm) callSettings() (goja.Value, error) {
	if v.prog.settings == "{}" {
		return v.rt.NewObject(), nil
	}
	return v.parse(goja.Undefined(), v.rt.ToValue(v.prog.settings))
}

// handler returns the global function named name, or nil (also when
// reading it throws: a getter on globalThis).
func (v *vm) handler(name string) goja.Callable {
	var val goja.Value
	if v.protect(func() { val = v.rt.GlobalObject().Get(name) }) != nil {
		return nil
	}
	f, ok := goja.AssertFunction(val)
	if !ok {
		return nil
	}
	return f
}

// protect runs f, Go code that reads JavaScript values, as goja runs a
// native: a getter or a proxy trap that f sets off may throw or be
// interrupted, which outside of a native is a Go panic (the process
// ends); here it is the error returned.
func (v *vm) protect(f func()) error {
	v.pending = f
	_, err := v.protectFn(goja.Undefined())
	return err
}

// describe turns an error of the interpreter into one whose message says
// where the code failed. Writing a thrown object calls its toString,
// which may throw in turn.
func (v *vm) describe(err error) error {
	var ex *goja.Exception
	if errors.As(err, &ex) {
		s := "the code threw a value that cannot be written"
		v.protect(func() { s = ex.String() })
		return errors.New(s)
	}
	return err
}

func (v *vm) close() {
	v.rt.ClearInterrupt()
}
