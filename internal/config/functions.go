package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/function"
)

// Function is a JavaScript function (spec §9): its code, settings and
// limits, versioned. Every save of its content (code, settings, allowed
// hosts, timeout) is a new version; the deployed version is the one that
// runs, so that a change can be saved, looked at and deployed — or an older
// version deployed again, which is a rollback.
//
// From the Repo's List and Get, a Function holds its latest saved
// version's content; in [Contents] and [Workspace.Functions], the deployed
// version's.
type Function struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Kind is what the function is for, which decides the handlers its
	// code must define: source, destination or insert. It cannot change.
	Kind function.Kind `json:"kind"`
	// Code is the JavaScript source.
	Code string `json:"code"`
	// Settings are handed to every handler as its settings argument. They
	// may hold secrets and are returned as they are, like destination
	// settings. Never nil once stored.
	Settings map[string]any `json:"settings"`
	// AllowedHosts are the hosts fetch may reach (host, host:port, or
	// *.example.com for its subdomains); empty: fetch is refused. Never
	// nil once stored.
	AllowedHosts []string `json:"allowed_hosts"`
	// Timeout bounds one call, in whole milliseconds; 0 is
	// [function.DefaultTimeout], at most [function.MaxTimeout].
	Timeout Duration `json:"timeout,omitempty"`
	// Version is the latest saved version (1, 2, …).
	Version int `json:"version"`
	// DeployedVersion is the version that runs; 0: none is deployed (the
	// function was created with deploy false), and the workspace treats
	// the function as absent.
	DeployedVersion int `json:"deployed_version"`
	// Origin says who declared the function: "file" or "api".
	Origin    string    `json:"origin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// FunctionVersion is one saved version of a function's content, as the
// Config API lists it (GET /api/v1/functions/{id}/versions, without Code)
// and shows it (…/versions/{version}, with Code).
type FunctionVersion struct {
	Function string `json:"function"`
	Version  int    `json:"version"`
	// Deployed reports whether this is the version that runs.
	Deployed bool `json:"deployed"`
	// Code is empty in a list of versions.
	Code         string         `json:"code,omitempty"`
	Settings     map[string]any `json:"settings"`
	AllowedHosts []string       `json:"allowed_hosts"`
	Timeout      Duration       `json:"timeout,omitempty"`
	CreatedAt    time.Time      `json:"created_at,omitzero"`
}

// FunctionDestinationType is the destination type whose events go to a
// destination function: its settings name the function as
// {"function": "<id>"}.
const FunctionDestinationType = "function"

// Spec returns f in the form [function.Compile] takes, with Version
// f.Version: the version of the content f holds when it comes from the
// Repo's List or Get. ([BuildWorkspace] compiles the deployed content as
// version DeployedVersion.)
func (f *Function) Spec() function.Spec {
	return function.Spec{
		ID: f.ID, Version: f.Version, Kind: f.Kind, Code: f.Code,
		Settings: f.Settings, AllowedHosts: f.AllowedHosts, Timeout: time.Duration(f.Timeout),
	}
}

// Validate reports every problem of a function, with paths prefixed by
// prefix (empty for an API body): its id and name, its kind (at "kind"),
// its timeout (at "timeout"), each allowed host that is not one (at
// "allowed_hosts[i]"), and what [function.Compile] finds in its code (at
// "code": a syntax error with its line and column in the code, or a
// handler its kind needs and the code does not define). It compiles the
// code, running its top-level statements once.
func (f *Function) Validate(prefix string) []*FieldError {
	var errs []*FieldError
	if m := ValidateID(f.ID); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "id"), Message: m})
	}
	if len(f.Name) > MaxNameLen {
		errs = append(errs, &FieldError{Path: join(prefix, "name"), Message: fmt.Sprintf("longer than %d characters", MaxNameLen)})
	}
	kindOK := slices.Contains(function.Kinds, f.Kind)
	if !kindOK {
		m := fmt.Sprintf("%q is not a kind of function: use %s", f.Kind, functionKindList())
		if f.Kind == "" {
			m = "required: " + functionKindList()
		}
		errs = append(errs, &FieldError{Path: join(prefix, "kind"), Message: m})
	}
	spec := f.Spec()
	if t := time.Duration(f.Timeout); t < 0 || t > function.MaxTimeout {
		errs = append(errs, &FieldError{Path: join(prefix, "timeout"),
			Message: fmt.Sprintf("%s is out of range: up to %s (0 or left out: %s)", f.Timeout, Duration(function.MaxTimeout), Duration(function.DefaultTimeout))})
		spec.Timeout = 0
	} else if t%time.Millisecond != 0 {
		errs = append(errs, &FieldError{Path: join(prefix, "timeout"), Message: fmt.Sprintf("%s is not a whole number of milliseconds", f.Timeout)})
		spec.Timeout = 0
	}
	if !kindOK {
		return errs // the handlers a function needs depend on its kind
	}
	if strings.TrimSpace(f.Code) == "" {
		return append(errs, &FieldError{Path: join(prefix, "code"), Message: "required"})
	}
	// Compile checks the hosts before it compiles: find every bad one,
	// then compile once the rest are good.
	hosts := spec.AllowedHosts
	for base := 0; ; {
		spec.AllowedHosts = hosts[base:]
		_, err := function.Compile(spec)
		if err == nil {
			break
		}
		if i := badHost(err, hosts[base:]); i >= 0 {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("%s[%d]", join(prefix, "allowed_hosts"), base+i), Message: err.Error()})
			base += i + 1
			continue
		}
		path := join(prefix, "code")
		if strings.HasPrefix(err.Error(), "the settings are not JSON") {
			path = join(prefix, "settings")
		}
		errs = append(errs, &FieldError{Path: path, Message: err.Error()})
		break
	}
	return errs
}

// badHost returns the index of the host that err, an error of
// [function.Compile], is about, or -1.
func badHost(err error, hosts []string) int {
	for i, h := range hosts {
		if strings.HasPrefix(err.Error(), fmt.Sprintf("allowed host %q", h)) {
			return i
		}
	}
	return -1
}

// functionKindList is the kinds of function, for messages: "source, destination
// or insert".
func functionKindList() string {
	s := make([]string, len(function.Kinds))
	for i, k := range function.Kinds {
		s[i] = string(k)
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// functionRef is one reference of a workspace object to a function, with
// the kind the function must be.
type functionRef struct {
	// path is the field holding the reference, e.g. "insert_function".
	path string
	id   string
	kind function.Kind
}

// functionRefs returns the references of s to functions.
func (s *Source) functionRefs(prefix string) []functionRef {
	var refs []functionRef
	if s.Function != "" {
		refs = append(refs, functionRef{join(prefix, "function"), s.Function, function.KindSource})
	}
	if s.InsertFunction != "" {
		refs = append(refs, functionRef{join(prefix, "insert_function"), s.InsertFunction, function.KindInsert})
	}
	return refs
}

// functionRefs returns the references of d to functions: its insert
// function and, for a destination of type function, its destination
// function (settings.function) when that is a string.
func (d *Destination) functionRefs(prefix string) []functionRef {
	var refs []functionRef
	if d.InsertFunction != "" {
		refs = append(refs, functionRef{join(prefix, "insert_function"), d.InsertFunction, function.KindInsert})
	}
	if id := d.DestinationFunction(); id != "" {
		refs = append(refs, functionRef{join(join(prefix, "settings"), "function"), id, function.KindDestination})
	}
	return refs
}

// DestinationFunction returns the id of the destination function a
// destination of type "function" sends its events to (its
// settings.function), or "" for another type or no such setting.
func (d *Destination) DestinationFunction() string {
	if d.Type != FunctionDestinationType {
		return ""
	}
	id, _ := d.Settings["function"].(string)
	return id
}

// validateFunctionRefs reports the function ids of refs that are not ids,
// and for a destination of type function, a settings.function that is
// missing or not a string.
func validateFunctionRefs(refs []functionRef) []*FieldError {
	var errs []*FieldError
	for _, r := range refs {
		if m := ValidateID(r.id); m != "" {
			errs = append(errs, &FieldError{Path: r.path, Message: m})
		}
	}
	return errs
}

// wrongKind is the message for a reference to a function of another kind.
func wrongKind(id string, got, want function.Kind) string {
	return fmt.Sprintf("function %q is %s function, not %s function", id, aKind(got), aKind(want))
}

// aKind is kind with its article: "a source", "an insert".
func aKind(k function.Kind) string {
	if k != "" && strings.ContainsRune("aeiou", rune(k[0])) {
		return "an " + string(k)
	}
	return "a " + string(k)
}
