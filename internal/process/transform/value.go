package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/confluxcdp/conflux/internal/fql"
)

// normalize turns a value decoded from YAML or JSON (ints, float64,
// map[string]any, …) into the form of an [event.Doc]: numbers become
// json.Number, so that a static value is encoded exactly as written.
func normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not a JSON value: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		return nil, fmt.Errorf("not a JSON value: %w", err)
	}
	return out, nil
}

// composite reports whether v is an object or a list, which must be copied
// before it goes into an event so that two events (or two places in one)
// never share it.
func composite(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

// clone copies objects and lists deeply and turns float64 numbers, as FQL
// builds them, into json.Number.
func clone(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			c, err := clone(x)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			c, err := clone(x)
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	case float64:
		return number(t)
	}
	return v, nil
}

// errNotFinite reports an FQL number that JSON cannot hold.
var errNotFinite = errors.New("result is not a finite number")

// number formats f as a JSON number: plain decimals between 1e-6 and 1e21,
// exponent form outside, as JavaScript and FQL's string() write it.
func number(f float64) (json.Number, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "", errNotFinite
	}
	if f == 0 {
		return "0", nil // and not "-0"
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return json.Number(strconv.FormatFloat(f, 'f', -1, 64)), nil
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

// fromFQL turns an FQL result into a value for an event. ok is false for
// null, which leaves the property as it is.
func fromFQL(v fql.Value) (out any, ok bool, err error) {
	switch v.Kind() {
	case fql.KindNull:
		return nil, false, nil
	case fql.KindNumber:
		f, _ := v.AsNumber()
		n, err := number(f)
		return n, err == nil, err
	case fql.KindList, fql.KindObject:
		c, err := clone(v.Interface())
		return c, err == nil, err
	}
	return v.Interface(), true, nil
}
