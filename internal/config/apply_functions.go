package config

import (
	"context"
	"fmt"

	"github.com/confluxcdp/conflux/internal/function"
)

// This file is the part of [Repo.ApplyFile] that applies the file's
// functions.

// functionDecl is what the config file declares about a function: its
// canonical JSON is what file_hash covers.
type functionDecl struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Kind         function.Kind  `json:"kind"`
	Code         string         `json:"code"`
	Settings     map[string]any `json:"settings"`
	AllowedHosts []string       `json:"allowed_hosts"`
	Timeout      Duration       `json:"timeout"`
}

// checkFunctions validates the functions of cfg on their own (compiling
// each), normalizes them as stored and hashes their declarations.
func (f *checkedFile) checkFunctions(cfg *Config) []*FieldError {
	var errs []*FieldError
	f.functions = make([]Function, len(cfg.Functions))
	f.fnHashes = make([]string, len(cfg.Functions))
	f.fnContent = make([]functionContent, len(cfg.Functions))
	f.fnPaths = make([]string, len(cfg.Functions))
	ids := make(map[string]string)
	for i, fn := range cfg.Functions {
		p := fmt.Sprintf("functions[%d]", i)
		if i < len(cfg.functionPaths) {
			p = cfg.functionPaths[i]
		}
		f.fnPaths[i] = p
		if fn.Settings == nil {
			fn.Settings = map[string]any{}
		}
		if fn.AllowedHosts == nil {
			fn.AllowedHosts = []string{}
		}
		var ferrs []*FieldError
		f.fnContent[i], ferrs = checkFunction(&fn, p)
		errs = append(errs, ferrs...)
		if other, dup := ids[fn.ID]; dup {
			errs = append(errs, &FieldError{Path: join(p, "id"), Message: fmt.Sprintf("duplicate function id %q (also %s)", fn.ID, other)})
		}
		ids[fn.ID] = p
		f.functions[i] = fn
		h, err := declHash(functionDecl{ID: fn.ID, Name: fn.Name, Kind: fn.Kind, Code: fn.Code,
			Settings: fn.Settings, AllowedHosts: fn.AllowedHosts, Timeout: fn.Timeout})
		if err != nil {
			continue // reported by checkFunction
		}
		f.fnHashes[i] = h
	}
	return errs
}

// checkFunctions rejects file functions that collide with functions created
// through the API, or that would change kind.
func (a *applier) checkFunctions() error {
	for i, fn := range a.f.functions {
		cur, ok := a.functions[fn.ID]
		switch {
		case !ok:
		case cur.Origin != OriginFile:
			return fmt.Errorf("%s: function %q was created through the API; delete it there or rename it in the file: %w", a.f.fnPaths[i], fn.ID, ErrConflict)
		case cur.Kind != fn.Kind:
			return fmt.Errorf("%s: function %q is %s function and cannot become %s function; give it another id: %w",
				a.f.fnPaths[i], fn.ID, aKind(cur.Kind), aKind(fn.Kind), ErrConflict)
		}
	}
	return nil
}

// missingFunctions reports the references of the file's sources and
// destinations to functions that neither the file nor the store's API
// functions hold, or that are of the wrong kind.
func (a *applier) missingFunctions() []*FieldError {
	kinds := make(map[string]function.Kind)
	for id, fn := range a.functions {
		if fn.Origin != OriginFile {
			kinds[id] = fn.Kind
		}
	}
	for _, fn := range a.f.functions {
		kinds[fn.ID] = fn.Kind
	}
	var refs []functionRef
	for i := range a.f.sources {
		refs = append(refs, a.f.sources[i].functionRefs(fmt.Sprintf("sources[%d]", i))...)
	}
	for i := range a.f.destinations {
		refs = append(refs, a.f.destinations[i].functionRefs(fmt.Sprintf("destinations[%d]", i))...)
	}
	var errs []*FieldError
	for _, ref := range refs {
		kind, ok := kinds[ref.id]
		switch {
		case !ok:
			errs = append(errs, &FieldError{Path: ref.path, Message: fmt.Sprintf("function %q is not declared in the file nor created through the API", ref.id)})
		case kind != ref.kind:
			errs = append(errs, &FieldError{Path: ref.path, Message: wrongKind(ref.id, kind, ref.kind)})
		}
	}
	return errs
}

// applyFunction creates or updates function i of the file. A created one
// has its version 1 deployed; an updated one the file's content, saved as
// a new version when it differs from the latest.
func (a *applier) applyFunction(ctx context.Context, i int) error {
	fn, hash, c := a.f.functions[i], a.f.fnHashes[i], a.f.fnContent[i]
	cur, ok := a.functions[fn.ID]
	switch {
	case !ok:
		fn.Origin = OriginFile
		if err := a.r.insertFunction(ctx, a.tx, fn, c, true, hash, a.now); err != nil {
			return err
		}
		a.rep.Functions.Created = append(a.rep.Functions.Created, fn.ID)
	case cur.fileHash == hash:
		a.rep.Functions.Unchanged = append(a.rep.Functions.Unchanged, fn.ID)
	default:
		if _, err := a.r.saveFunction(ctx, a.tx, cur, fn, c, true, &hash, a.now); err != nil {
			return err
		}
		a.rep.Functions.Updated = append(a.rep.Functions.Updated, fn.ID)
	}
	return nil
}
