package function

import (
	"errors"
	"fmt"

	"github.com/dop251/goja"
)

// Status is what became of one call, or of one event in a batch.
type Status uint8

// The statuses, from Segment's outcome table (spec §9).
const (
	// OK: the handler finished (an insert function returned the event).
	OK Status = iota + 1
	// Retry: RetryError, a timeout, or a fetch that could not connect; the
	// event may pass later.
	Retry
	// Discard: EventNotSupported, InvalidEventPayload, ValidationError,
	// InvalidSettings, any other error, or a broken limit; the event will
	// not pass as it is.
	Discard
	// Drop: an insert function threw DropEvent, returned nothing, or has
	// no handler for the event's type; the event goes no further, on
	// purpose.
	Drop
)

// String returns "ok", "retry", "discard" or "drop".
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Retry:
		return "retry"
	case Discard:
		return "discard"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// The classes an [Outcome] names besides the error classes the functions
// throw (EventNotSupported, …): what Conflux itself stopped a call for.
const (
	ClassTimeout     = "Timeout"
	ClassMemoryLimit = "MemoryLimit"
	ClassNoHandler   = "NoHandler"
	ClassBadReturn   = "InvalidReturn"
)

// Outcome is the status of a call, or of one event of a batch, and why.
type Outcome struct {
	Status Status
	// Class names the error: a thrown error's name (RetryError, TypeError,
	// …) or one of the Class constants; "" when the status is OK.
	Class string
	// Message is the error's message.
	Message string
}

// Err returns the outcome as an error, nil when it is OK.
func (o Outcome) Err() error {
	if o.Status == OK {
		return nil
	}
	if o.Message == "" {
		return errors.New(o.Class)
	}
	return fmt.Errorf("%s: %s", o.Class, o.Message)
}

// statusOf is the status a thrown error class means.
func statusOf(class string) Status {
	switch class {
	case "RetryError", ClassTimeout, "FetchError":
		return Retry
	case "DropEvent":
		return Drop
	}
	return Discard
}

// outcomeOf classifies what a call failed with: a thrown value, an
// interruption, or a stack overflow.
func (v *vm) outcomeOf(err error) Outcome {
	var intr *goja.InterruptedError
	if errors.As(err, &intr) {
		if e, ok := intr.Value().(error); ok && errors.Is(e, errMemory) {
			return Outcome{Status: Discard, Class: ClassMemoryLimit, Message: errMemory.Error()}
		}
		return Outcome{Status: Retry, Class: ClassTimeout, Message: fmt.Sprintf("the function did not finish within %s", v.prog.spec.Timeout)}
	}
	var rej *rejection
	if errors.As(err, &rej) {
		return v.thrown(rej.reason)
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return v.thrown(ex.Value())
	}
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		return Outcome{Status: Discard, Class: "RangeError", Message: "Maximum call stack size exceeded"}
	}
	return Outcome{Status: Discard, Class: "Error", Message: err.Error()}
}

// thrown classifies a thrown (or rejected) value: an instance of one of
// the error classes, or any value with a name, or anything else.
func (v *vm) thrown(val goja.Value) Outcome {
	if val == nil || goja.IsUndefined(val) || goja.IsNull(val) {
		return Outcome{Status: Discard, Class: "Error", Message: "the function threw " + fmt.Sprint(val)}
	}
	obj, ok := val.(*goja.Object)
	if !ok {
		return Outcome{Status: Discard, Class: "Error", Message: val.String()}
	}
	// Reading name and message may run getters or proxy traps.
	msg, name := "", ""
	if err := v.protect(func() {
		if m := obj.Get("message"); m != nil && !goja.IsUndefined(m) {
			msg = m.String()
		}
		if n := obj.Get("name"); n != nil && !goja.IsUndefined(n) {
			name = n.String()
		}
	}); err != nil {
		msg, name = "the function threw a value that cannot be read: "+err.Error(), ""
	}
	matched := ""
	v.protect(func() { // a proxy's getPrototypeOf trap may throw or loop
		for class, c := range v.classes {
			if ok, _ := instanceOf(v.rt, obj, c); ok {
				matched = class
				return
			}
		}
	})
	if matched != "" {
		return Outcome{Status: statusOf(matched), Class: matched, Message: msg}
	}
	class := "Error"
	if name != "" {
		class = name
	}
	if class == "RetryError" || class == "DropEvent" || class == "FetchError" {
		return Outcome{Status: statusOf(class), Class: class, Message: msg}
	}
	return Outcome{Status: Discard, Class: class, Message: msg}
}

// instanceOf is obj instanceof class, false when that throws (a Proxy
// with a throwing trap).
func instanceOf(rt *goja.Runtime, obj, class *goja.Object) (res bool, ok bool) {
	ex := rt.Try(func() { res = rt.InstanceOf(obj, class) })
	return res && ex == nil, ex == nil
}
