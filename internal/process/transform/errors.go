package transform

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is one problem with one field of a [Transformation] or a
// [Filter], found by [Compile], [CompileChain] or [CompileFilters]. Those
// functions return every problem they find, joined by [errors.Join]; find
// them with errors.AsType[*FieldError] or by unwrapping the joined error.
type FieldError struct {
	// Path names the field in the Go/JSON form of the input, for example
	// "fqlDefinedProperties[1].fql" or "filters[2].actions[0].percent".
	// A caller that knows where the input came from (a YAML node, an API
	// request) can prefix it or turn it into a position.
	Path string
	// Err is the problem. A compile error of an FQL expression is an
	// *fql.Error, which gives the position inside the expression.
	Err error
}

// Error returns "path: problem", or the problem alone when it concerns the
// input as a whole.
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

// problems collects the FieldErrors of one compilation.
type problems struct {
	prefix string
	errs   []error
}

// add records a problem at path, which is relative to the prefix.
func (p *problems) add(path string, err error) {
	p.errs = append(p.errs, &FieldError{Path: join(p.prefix, path), Err: err})
}

// addf records a problem at path with a formatted message.
func (p *problems) addf(path, format string, args ...any) {
	p.add(path, fmt.Errorf(format, args...))
}

// err returns all the problems as one error, or nil.
func (p *problems) err() error { return errors.Join(p.errs...) }

// join appends a field path to a prefix: join("filters[1]", "if") is
// "filters[1].if", join("a", "[2]") is "a[2]".
func join(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}
