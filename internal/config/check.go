package config

import (
	"context"
	"errors"
	"fmt"
)

// DestinationCheck says whether typ is a destination type that the
// delivery stage knows and whether settings are right for it; nil means
// both are. This package does not know destination types (see the package
// comment), so the server passes the delivery stage's check to
// [API.DestinationCheck] and to [Config.CheckDestinations].
//
// Its error is reported at the destination's field paths:
//   - an error matching [ErrUnknownType] at "type";
//   - a [*FieldError] at "settings.<its Path>", Path being relative to the
//     settings object ("api_key", "headers[2]"); an empty Path is
//     "settings" itself;
//   - any other error at "settings".
//
// Errors joined with errors.Join (or held by a [*ValidationError]) are
// reported one by one, so a check can return every problem at once. An
// error of a done ctx is returned as such, not reported as a problem.
//
// It must not modify settings, and must be safe for concurrent use: the
// Config API calls it from its request handlers.
type DestinationCheck func(ctx context.Context, typ string, settings map[string]any) error

// ErrUnknownType is what a [DestinationCheck] returns, wrapped in an error
// naming the type, for a destination type that does not exist.
var ErrUnknownType = errors.New("unknown destination type")

// checkDestination asks check about d's type and settings and returns its
// answer as problems under prefix (see [DestinationCheck]); err is the
// error of a done ctx.
func checkDestination(ctx context.Context, check DestinationCheck, prefix string, d *Destination) (problems []*FieldError, err error) {
	cerr := check(ctx, d.Type, d.Settings)
	if cerr == nil {
		return nil, nil
	}
	if ctx.Err() != nil && (errors.Is(cerr, context.Canceled) || errors.Is(cerr, context.DeadlineExceeded)) {
		return nil, cerr
	}
	settings := join(prefix, "settings")
	for _, e := range flatten(cerr) {
		fe, isField := errors.AsType[*FieldError](e)
		switch {
		case errors.Is(e, ErrUnknownType):
			problems = append(problems, &FieldError{Path: join(prefix, "type"), Message: e.Error()})
		case isField:
			problems = append(problems, &FieldError{Path: joinPath(settings, fe.Path), Message: fe.Message})
		default:
			problems = append(problems, &FieldError{Path: settings, Message: e.Error()})
		}
	}
	return problems, nil
}

// flatten returns the errors that err joins, recursively, or err alone.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		if e != nil {
			out = append(out, flatten(e)...)
		}
	}
	return out
}

// CheckDestinations asks check about the type and settings of every
// destination c declares, disabled ones included (enabling one later must
// not be the moment its settings turn out wrong), so that the server can
// refuse a bad file at start, right after [Load], as Load refuses a file
// with a typo. Every problem is reported at once, as a [*LoadError] like
// Load's: each names the file, the line and column of the value (the
// settings block for a problem inside it) and the field path, e.g.
// "conflux.yaml:12:7: destinations[1].settings.api_key: required".
// A Config built in code has no file and no positions; its problems have
// only the path. A nil check accepts everything. An error of a done ctx is
// returned wrapped.
func (c *Config) CheckDestinations(ctx context.Context, check DestinationCheck) error {
	if check == nil {
		return nil
	}
	var errs []*FieldError
	for i := range c.Destinations {
		problems, err := checkDestination(ctx, check, fmt.Sprintf("destinations[%d]", i), &c.Destinations[i])
		if err != nil {
			return fmt.Errorf("checking the destinations of %s: %w", c.file, err)
		}
		for _, fe := range problems {
			fe.File = c.file
			if p, ok := nearest(c.positions, fe.Path); ok {
				fe.Line, fe.Col = p.line, p.col
			}
		}
		errs = append(errs, problems...)
	}
	if len(errs) == 0 {
		return nil
	}
	dropped := max(len(errs)-maxErrors, 0)
	return newLoadError(c.file, errs[:len(errs)-dropped], dropped)
}
