package config

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/httpapi"
)

// This file is the Config API of functions:
//
//	GET    /api/v1/functions                           {"functions": [function…]}, latest content
//	POST   /api/v1/functions                           201 function: version 1, deployed unless "deploy": false
//	GET    /api/v1/functions/{id}                      the function, latest content
//	PATCH  /api/v1/functions/{id}                      a new version, deployed only with "deploy": true
//	DELETE /api/v1/functions/{id}                      204; 409 while a source or destination uses it
//	POST   /api/v1/functions/{id}/deploy               {"version": n} (default: the latest) runs version n
//	GET    /api/v1/functions/{id}/versions             {"versions": [version…]}, newest first, without code
//	GET    /api/v1/functions/{id}/versions/{version}   one version, with its code

// registerFunctions adds the routes of functions through h.
func (a *API) registerFunctions(h func(pattern string, f http.HandlerFunc)) {
	h("GET /api/v1/functions", a.listFunctions)
	h("POST /api/v1/functions", a.createFunction)
	h("GET /api/v1/functions/{id}", a.getFunction)
	h("PATCH /api/v1/functions/{id}", a.updateFunction)
	h("DELETE /api/v1/functions/{id}", a.deleteFunction)
	h("POST /api/v1/functions/{id}/deploy", a.deployFunction)
	h("GET /api/v1/functions/{id}/versions", a.listFunctionVersions)
	h("GET /api/v1/functions/{id}/versions/{version}", a.getFunctionVersion)
}

func (a *API) listFunctions(w http.ResponseWriter, r *http.Request) {
	f, err := a.repo.ListFunctions(r.Context())
	a.respond(w, r, http.StatusOK, map[string]any{"functions": nonNil(f)}, err, false)
}

func (a *API) getFunction(w http.ResponseWriter, r *http.Request) {
	f, err := a.repo.GetFunction(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusOK, f, err, false)
}

// functionBody is the JSON of a function create or update; absent fields
// are left as they are on update, and settings and allowed_hosts, when
// present, replace the whole object or list. timeout is a duration string
// ("5s"); null or "0s" is the default. deploy says whether the saved
// version runs at once: by default yes on create, no on update.
type functionBody struct {
	ID           *string         `json:"id"`
	Name         *string         `json:"name"`
	Kind         *function.Kind  `json:"kind"`
	Code         *string         `json:"code"`
	Settings     *map[string]any `json:"settings"`
	AllowedHosts *[]string       `json:"allowed_hosts"`
	Timeout      json.RawMessage `json:"timeout"`
	Deploy       *bool           `json:"deploy"`
}

// apply sets the fields of f that b holds and returns the problems of
// those it could not read.
func (b *functionBody) apply(f *Function) []*FieldError {
	if b.Name != nil {
		f.Name = *b.Name
	}
	if b.Kind != nil {
		f.Kind = *b.Kind
	}
	if b.Code != nil {
		f.Code = *b.Code
	}
	if b.Settings != nil {
		f.Settings = *b.Settings
	}
	if b.AllowedHosts != nil {
		f.AllowedHosts = *b.AllowedHosts
	}
	switch string(b.Timeout) {
	case "":
	case "null":
		f.Timeout = 0
	default:
		var d Duration
		if err := d.UnmarshalJSON(b.Timeout); err != nil {
			return []*FieldError{{Path: "timeout", Message: err.Error()}}
		}
		f.Timeout = d
	}
	return nil
}

// admitFunction refuses f, writing a 400 and returning false, if its body
// had problems (bodyErrs): they are answered with f's other problems, so
// that one answer lists them all.
func admitFunction(w http.ResponseWriter, f Function, bodyErrs []*FieldError) bool {
	if len(bodyErrs) == 0 {
		return true
	}
	errs := bodyErrs
	for _, fe := range f.Validate("") {
		if !slices.ContainsFunc(bodyErrs, func(b *FieldError) bool { return b.Path == fe.Path }) {
			errs = append(errs, fe)
		}
	}
	writeRepoError(w, &ValidationError{Errors: errs})
	return false
}

func (a *API) createFunction(w http.ResponseWriter, r *http.Request) {
	var b functionBody
	if !decode(w, r, &b) {
		return
	}
	f := Function{ID: deref(b.ID), Origin: OriginAPI}
	if !admitFunction(w, f, b.apply(&f)) {
		return
	}
	created, err := a.repo.CreateFunction(r.Context(), f, b.Deploy == nil || *b.Deploy)
	a.respond(w, r, http.StatusCreated, created, err, true)
}

func (a *API) updateFunction(w http.ResponseWriter, r *http.Request) {
	var b functionBody
	if !decode(w, r, &b) {
		return
	}
	f, err := a.repo.GetFunction(r.Context(), r.PathValue("id"))
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if b.ID != nil && *b.ID != f.ID {
		httpapi.WriteError(w, http.StatusBadRequest, "validation_error", "id cannot be changed")
		return
	}
	// A changed kind is refused by UpdateFunction, at "kind".
	if !admitFunction(w, f, b.apply(&f)) {
		return
	}
	updated, err := a.repo.UpdateFunction(r.Context(), f, b.Deploy != nil && *b.Deploy)
	a.respond(w, r, http.StatusOK, updated, err, true)
}

func (a *API) deleteFunction(w http.ResponseWriter, r *http.Request) {
	err := a.repo.DeleteFunction(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusNoContent, nil, err, true)
}

// deployBody is the JSON of a deploy: the version to run, 0 or absent for
// the latest saved version.
type deployBody struct {
	Version int `json:"version"`
}

func (a *API) deployFunction(w http.ResponseWriter, r *http.Request) {
	var b deployBody
	if r.ContentLength != 0 && !decode(w, r, &b) {
		return
	}
	if b.Version < 0 {
		writeRepoError(w, &ValidationError{Errors: []*FieldError{{Path: "version", Message: fmt.Sprintf("%d is not a version: versions count from 1 (0 or left out: the latest)", b.Version)}}})
		return
	}
	f, err := a.repo.DeployFunction(r.Context(), r.PathValue("id"), b.Version)
	a.respond(w, r, http.StatusOK, f, err, true)
}

func (a *API) listFunctionVersions(w http.ResponseWriter, r *http.Request) {
	v, err := a.repo.ListFunctionVersions(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusOK, map[string]any{"versions": nonNil(v)}, err, false)
}

func (a *API) getFunctionVersion(w http.ResponseWriter, r *http.Request) {
	s := r.PathValue("version")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		httpapi.WriteError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("version %q: want a whole number from 1", s))
		return
	}
	v, err := a.repo.GetFunctionVersion(r.Context(), r.PathValue("id"), n)
	a.respond(w, r, http.StatusOK, v, err, false)
}
