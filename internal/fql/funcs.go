package fql

import (
	"fmt"
	"strconv"
	"strings"
)

// funcSpec describes a built-in function: exactly one of f1 and f2 is set,
// according to arity.
type funcSpec struct {
	arity int
	f1    func(Value) (Value, error)
	f2    func(Value, Value) (Value, error)
}

// lookupFunc returns the built-in function called name. Names are
// case-sensitive.
func lookupFunc(name string) (funcSpec, bool) {
	one := func(f func(Value) (Value, error)) (funcSpec, bool) { return funcSpec{arity: 1, f1: f}, true }
	two := func(f func(Value, Value) (Value, error)) (funcSpec, bool) { return funcSpec{arity: 2, f2: f}, true }
	switch name {
	case "contains":
		return two(fnContains)
	case "match":
		return two(fnMatch)
	case "length":
		return one(fnLength)
	case "lowercase":
		return one(stringFunc(strings.ToLower))
	case "uppercase":
		return one(stringFunc(strings.ToUpper))
	case "snakecase":
		return one(stringFunc(snakeCase))
	case "kebabcase":
		return one(stringFunc(kebabCase))
	case "titlecase":
		return one(stringFunc(titleCase))
	case "typeof":
		return one(fnTypeof)
	case "bool":
		return one(fnBool)
	case "string":
		return one(fnString)
	case "number":
		return one(fnNumber)
	}
	return funcSpec{}, false
}

// fnContains is contains(s, sub): false unless both are strings.
func fnContains(s, sub Value) (Value, error) {
	if s.kind != KindString || sub.kind != KindString {
		return Bool(false), nil
	}
	return Bool(strings.Contains(s.str, sub.str)), nil
}

// fnMatch is match(s, glob): false unless both are strings and the pattern
// is well formed.
func fnMatch(s, pattern Value) (Value, error) {
	if s.kind != KindString || pattern.kind != KindString {
		return Bool(false), nil
	}
	return Bool(globMatch(pattern.str, s.str)), nil
}

// fnLength is length(v): bytes of a string, elements of a list, 0 for null.
func fnLength(v Value) (Value, error) {
	switch v.kind {
	case KindNull:
		return Number(0), nil
	case KindString:
		return Number(float64(len(v.str))), nil
	case KindList:
		return Number(float64(len(v.items()))), nil
	}
	return Value{}, fmt.Errorf("want a list, a string or null, found %s", v.kind)
}

// stringFunc lifts a string transformation to FQL: non-strings give null.
func stringFunc(f func(string) string) func(Value) (Value, error) {
	return func(v Value) (Value, error) {
		if v.kind != KindString {
			return Value{}, nil
		}
		return String(f(v.str)), nil
	}
}

// fnTypeof is typeof(v).
func fnTypeof(v Value) (Value, error) { return String(v.kind.String()), nil }

// fnBool is bool(v): null is false, a number is true unless 0, a list is
// true unless empty, and a string is read by strconv.ParseBool ("true",
// "false", "1", "0", "t", "f", "TRUE", …).
func fnBool(v Value) (Value, error) {
	switch v.kind {
	case KindBool:
		return v, nil
	case KindNull:
		return Bool(false), nil
	case KindNumber:
		return Bool(v.num != 0), nil
	case KindList:
		return Bool(len(v.items()) > 0), nil
	case KindString:
		b, err := strconv.ParseBool(v.str)
		if err != nil {
			return Value{}, fmt.Errorf("cannot convert string %s to bool", clip(strconv.Quote(v.str)))
		}
		return Bool(b), nil
	}
	return Value{}, fmt.Errorf("cannot convert %s to bool", v.kind)
}

// fnString is string(v): a string as it is, anything else as JSON text.
func fnString(v Value) (Value, error) {
	if v.kind == KindString {
		return v, nil
	}
	s, err := toText(v)
	if err != nil {
		return Value{}, err
	}
	return String(s), nil
}

// fnNumber is number(v): a number as it is, null stays null, and a string
// must hold a number in FQL syntax, optionally surrounded by spaces.
func fnNumber(v Value) (Value, error) {
	switch v.kind {
	case KindNumber, KindNull:
		return v, nil
	case KindString:
		s := strings.TrimSpace(v.str)
		if end, msg := scanNumber(s, 0); msg == "" && end == len(s) {
			if f, ok := parseNumber(s); ok {
				return Number(f), nil
			}
		}
		return Value{}, fmt.Errorf("cannot convert string %s to number", clip(strconv.Quote(v.str)))
	}
	return Value{}, fmt.Errorf("cannot convert %s to number", v.kind)
}
