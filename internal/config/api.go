package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// API is the Config API under /api/v1: sources, destinations, tracking
// plans, transformations, functions and alert rules, listed, created,
// updated, deleted, write keys rotated, and function versions listed and
// deployed (see api_functions.go); and the identity settings, read,
// replaced and reset (/api/v1/identity/settings). Every change is
// written to the state store and made live (Manager.Reload) before the
// response, so the next request anywhere in this process sees it.
type API struct {
	repo *Repo
	mgr  *Manager

	// DestinationCheck, when set, is asked about the type and settings of
	// every destination created, and of every one patched with a type or
	// settings; what it finds is a 400 validation_error at "type" or
	// "settings…" (see [DestinationCheck]), and nothing is stored. A patch
	// of other fields (name, enabled, …) does not ask it, so that a
	// destination whose stored settings a newer version rejects can still
	// be disabled. Nil accepts any type and settings. Set it before
	// Register.
	DestinationCheck DestinationCheck

	// AlertStates, when set, gives the run-time state of alert rules: the
	// API then answers each rule with "state", "since", "last_value" and
	// "evaluated_at" (a rule not yet evaluated is "ok" with nulls). Nil
	// leaves them out. Set it before Register.
	AlertStates AlertStates
}

// NewAPI returns the Config API over repo and mgr.
func NewAPI(repo *Repo, mgr *Manager) *API { return &API{repo: repo, mgr: mgr} }

// Register adds the Config API's routes to mux, each wrapped by auth.
func (a *API) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, auth(f)) }
	h("GET /api/v1/sources", a.listSources)
	h("POST /api/v1/sources", a.createSource)
	h("GET /api/v1/sources/{id}", a.getSource)
	h("PATCH /api/v1/sources/{id}", a.updateSource)
	h("DELETE /api/v1/sources/{id}", a.deleteSource)
	h("POST /api/v1/sources/{id}/rotate-write-key", a.rotateWriteKey)
	h("GET /api/v1/destinations", a.listDestinations)
	h("POST /api/v1/destinations", a.createDestination)
	h("GET /api/v1/destinations/{id}", a.getDestination)
	h("PATCH /api/v1/destinations/{id}", a.updateDestination)
	h("DELETE /api/v1/destinations/{id}", a.deleteDestination)
	h("GET /api/v1/tracking-plans", a.listTrackingPlans)
	h("POST /api/v1/tracking-plans", a.createTrackingPlan)
	h("GET /api/v1/tracking-plans/{id}", a.getTrackingPlan)
	h("PATCH /api/v1/tracking-plans/{id}", a.updateTrackingPlan)
	h("DELETE /api/v1/tracking-plans/{id}", a.deleteTrackingPlan)
	h("GET /api/v1/transformations", a.listTransformations)
	h("POST /api/v1/transformations", a.createTransformation)
	h("GET /api/v1/transformations/{id}", a.getTransformation)
	h("PATCH /api/v1/transformations/{id}", a.updateTransformation)
	h("DELETE /api/v1/transformations/{id}", a.deleteTransformation)
	h("GET /api/v1/alerts", a.listAlerts)
	h("POST /api/v1/alerts", a.createAlert)
	h("GET /api/v1/alerts/{id}", a.getAlert)
	h("PATCH /api/v1/alerts/{id}", a.updateAlert)
	h("DELETE /api/v1/alerts/{id}", a.deleteAlert)
	a.registerFunctions(h)
	h("GET /api/v1/identity/settings", a.getIdentity)
	h("PUT /api/v1/identity/settings", a.putIdentity)
	h("DELETE /api/v1/identity/settings", a.deleteIdentity)
}

// maxBody bounds a Config API request body.
const maxBody = 1 << 20

// decode reads a JSON body strictly (see [httpapi.DecodeJSON]).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return httpapi.DecodeJSON(w, r, maxBody, v)
}

// respond maps a repository outcome to a response, making any change live first.
func (a *API) respond(w http.ResponseWriter, r *http.Request, status int, v any, err error, changed bool) {
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if changed {
		if err := a.mgr.Reload(r.Context()); err != nil {
			httpapi.WriteError(w, http.StatusInternalServerError, "internal", "change saved but not yet live: "+err.Error())
			return
		}
	}
	if v == nil {
		w.WriteHeader(status)
		return
	}
	httpapi.WriteJSON(w, status, v)
}

func writeRepoError(w http.ResponseWriter, err error) {
	if ve, ok := errors.AsType[*ValidationError](err); ok {
		body := httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: "validation_error", Message: ve.Error()}}
		for _, fe := range ve.Errors {
			body.Error.Fields = append(body.Error.Fields, httpapi.FieldError{Path: fe.Path, Message: fe.Message})
		}
		httpapi.WriteJSON(w, http.StatusBadRequest, body)
		return
	}
	switch {
	case errors.Is(err, ErrNotFound):
		httpapi.WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrConflict):
		httpapi.WriteError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, context.Canceled):
		httpapi.WriteError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	default:
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

func (a *API) listSources(w http.ResponseWriter, r *http.Request) {
	s, err := a.repo.ListSources(r.Context())
	a.respond(w, r, http.StatusOK, map[string]any{"sources": nonNil(s)}, err, false)
}

func (a *API) getSource(w http.ResponseWriter, r *http.Request) {
	s, err := a.repo.GetSource(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusOK, s, err, false)
}

// sourceBody is the JSON of a source create or update; absent fields are
// left as they are on update. On update, schema is merged into the
// source's schema block: the keys it holds are set ("" resets a control to
// allow, or a forward to none), the others kept; schema null resets the
// whole block. tracking_plan "" detaches the plan, function and
// insert_function "" the function.
type sourceBody struct {
	ID             *string         `json:"id"`
	Name           *string         `json:"name"`
	WriteKey       *string         `json:"write_key"`
	TrackingPlan   *string         `json:"tracking_plan"`
	Schema         json.RawMessage `json:"schema"`
	Function       *string         `json:"function"`
	InsertFunction *string         `json:"insert_function"`
}

// mergeSchema applies the schema object of a request body to s, strictly:
// an unknown key is an error.
func mergeSchema(s *SourceSchema, patch json.RawMessage) error {
	if len(patch) == 0 {
		return nil
	}
	if string(patch) == "null" {
		*s = SourceSchema{}
		return nil
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(patch, &keys); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	cur, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	var merged map[string]json.RawMessage
	if err := json.Unmarshal(cur, &merged); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	maps.Copy(merged, keys)
	b, err := json.Marshal(merged)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out SourceSchema
	if err := dec.Decode(&out); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	*s = out
	return nil
}

func (a *API) createSource(w http.ResponseWriter, r *http.Request) {
	var b sourceBody
	if !decode(w, r, &b) {
		return
	}
	s := Source{ID: deref(b.ID), Name: deref(b.Name), WriteKey: deref(b.WriteKey), Origin: OriginAPI,
		TrackingPlan: deref(b.TrackingPlan), Function: deref(b.Function), InsertFunction: deref(b.InsertFunction)}
	if err := mergeSchema(&s.Schema, b.Schema); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
		return
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	created, err := a.repo.CreateSource(r.Context(), s)
	a.respond(w, r, http.StatusCreated, created, err, true)
}

func (a *API) updateSource(w http.ResponseWriter, r *http.Request) {
	var b sourceBody
	if !decode(w, r, &b) {
		return
	}
	s, err := a.repo.GetSource(r.Context(), r.PathValue("id"))
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if b.ID != nil && *b.ID != s.ID {
		httpapi.WriteError(w, http.StatusBadRequest, "validation_error", "id cannot be changed")
		return
	}
	if b.Name != nil {
		s.Name = *b.Name
	}
	if b.WriteKey != nil {
		s.WriteKey = *b.WriteKey
	}
	if b.TrackingPlan != nil {
		s.TrackingPlan = *b.TrackingPlan
	}
	if b.Function != nil {
		s.Function = *b.Function
	}
	if b.InsertFunction != nil {
		s.InsertFunction = *b.InsertFunction
	}
	if err := mergeSchema(&s.Schema, b.Schema); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
		return
	}
	updated, err := a.repo.UpdateSource(r.Context(), s)
	a.respond(w, r, http.StatusOK, updated, err, true)
}

func (a *API) deleteSource(w http.ResponseWriter, r *http.Request) {
	err := a.repo.DeleteSource(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusNoContent, nil, err, true)
}

// rotateBody is the JSON of a write-key rotation.
type rotateBody struct {
	// Grace keeps the old key valid this long, e.g. "24h". Default: 0.
	Grace string `json:"grace"`
}

func (a *API) rotateWriteKey(w http.ResponseWriter, r *http.Request) {
	var b rotateBody
	if r.ContentLength != 0 && !decode(w, r, &b) {
		return
	}
	var grace time.Duration
	if b.Grace != "" {
		var err error
		if grace, err = time.ParseDuration(b.Grace); err != nil || grace < 0 {
			httpapi.WriteError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("grace %q: want a non-negative duration such as 24h", b.Grace))
			return
		}
	}
	s, err := a.repo.RotateWriteKey(r.Context(), r.PathValue("id"), grace)
	a.respond(w, r, http.StatusOK, s, err, true)
}

func (a *API) listDestinations(w http.ResponseWriter, r *http.Request) {
	d, err := a.repo.ListDestinations(r.Context())
	a.respond(w, r, http.StatusOK, map[string]any{"destinations": nonNil(d)}, err, false)
}

func (a *API) getDestination(w http.ResponseWriter, r *http.Request) {
	d, err := a.repo.GetDestination(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusOK, d, err, false)
}

// destinationBody is the JSON of a destination create or update; absent
// fields are left as they are on update. Filters, when present, replaces
// the whole list. Delivery is merged into the destination's delivery
// options, as a source's schema is: the keys it holds are set (null or 0
// resets one to the engine's default), the others kept; delivery null
// resets them all. insert_function "" removes the insert function.
type destinationBody struct {
	ID             *string             `json:"id"`
	Name           *string             `json:"name"`
	Type           *string             `json:"type"`
	Enabled        *bool               `json:"enabled"`
	Sources        *[]string           `json:"sources"`
	Settings       *map[string]any     `json:"settings"`
	Filters        *[]transform.Filter `json:"filters"`
	Delivery       json.RawMessage     `json:"delivery"`
	InsertFunction *string             `json:"insert_function"`
}

// apply sets the fields of d that b holds and returns the problems of its
// delivery object, if any.
func (b *destinationBody) apply(d *Destination) []*FieldError {
	if b.Name != nil {
		d.Name = *b.Name
	}
	if b.Type != nil {
		d.Type = *b.Type
	}
	if b.Enabled != nil {
		d.Enabled = *b.Enabled
	}
	if b.Sources != nil {
		d.Sources = *b.Sources
	}
	if b.Settings != nil {
		d.Settings = *b.Settings
	}
	if b.Filters != nil {
		d.Filters = *b.Filters
	}
	if b.InsertFunction != nil {
		d.InsertFunction = *b.InsertFunction
	}
	return patchDelivery(&d.Delivery, b.Delivery)
}

// patchDelivery merges the delivery object of a request body into o; see
// [destinationBody]. Unknown keys and values of the wrong kind are
// problems at "delivery.<key>", so that the answer names the field as a
// range error does; o is then left as it was.
func patchDelivery(o *DeliveryOptions, patch json.RawMessage) []*FieldError {
	if len(patch) == 0 {
		return nil
	}
	if string(bytes.TrimSpace(patch)) == "null" {
		*o = DeliveryOptions{}
		return nil
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(patch, &keys); err != nil {
		return []*FieldError{{Path: "delivery", Message: `must be an object such as {"concurrency": 4, "rate_limit": 50, "max_retry_age": "4h"}`}}
	}
	out := *o
	var errs []*FieldError
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		v, p := keys[key], join("delivery", key)
		switch key {
		case "concurrency":
			var n *int
			if err := json.Unmarshal(v, &n); err != nil {
				errs = append(errs, &FieldError{Path: p, Message: "must be a whole number"})
				continue
			}
			out.Concurrency = deref(n)
		case "rate_limit":
			var f *float64
			if err := json.Unmarshal(v, &f); err != nil {
				errs = append(errs, &FieldError{Path: p, Message: "must be a number"})
				continue
			}
			out.RateLimit = deref(f)
		case "max_retry_age":
			var d *Duration
			if err := json.Unmarshal(v, &d); err != nil {
				errs = append(errs, &FieldError{Path: p, Message: err.Error()})
				continue
			}
			out.MaxRetryAge = deref(d)
		case "shards":
			var n *int
			if err := json.Unmarshal(v, &n); err != nil {
				errs = append(errs, &FieldError{Path: p, Message: "must be a whole number"})
				continue
			}
			out.Shards = deref(n)
		default:
			errs = append(errs, &FieldError{Path: p, Message: unknownField(key, deliveryFields)})
		}
	}
	if len(errs) == 0 {
		*o = out
	}
	return errs
}

// admitDestination refuses d, writing a 400 and returning false, if its
// body had problems (bodyErrs), or if the destination check finds its type
// or settings wrong. The check is asked only when d is otherwise valid,
// and its problems come with d's own: one answer lists them all.
func (a *API) admitDestination(w http.ResponseWriter, r *http.Request, d *Destination, bodyErrs []*FieldError, ask bool) bool {
	if len(bodyErrs) == 0 && (!ask || a.DestinationCheck == nil) {
		return true
	}
	errs := append(bodyErrs, d.Validate("")...)
	if ask && a.DestinationCheck != nil && !slices.ContainsFunc(errs, func(fe *FieldError) bool { return fe.Path == "type" }) {
		problems, err := checkDestination(r.Context(), a.DestinationCheck, "", d)
		if err != nil {
			writeRepoError(w, fmt.Errorf("checking destination %q: %w", d.ID, err))
			return false
		}
		errs = append(errs, problems...)
	}
	if len(errs) == 0 {
		return true
	}
	writeRepoError(w, &ValidationError{Errors: errs})
	return false
}

func (a *API) createDestination(w http.ResponseWriter, r *http.Request) {
	var b destinationBody
	if !decode(w, r, &b) {
		return
	}
	d := Destination{ID: deref(b.ID), Enabled: true, Origin: OriginAPI, Settings: map[string]any{}}
	if !a.admitDestination(w, r, &d, b.apply(&d), true) {
		return
	}
	created, err := a.repo.CreateDestination(r.Context(), d)
	a.respond(w, r, http.StatusCreated, created, err, true)
}

func (a *API) updateDestination(w http.ResponseWriter, r *http.Request) {
	var b destinationBody
	if !decode(w, r, &b) {
		return
	}
	d, err := a.repo.GetDestination(r.Context(), r.PathValue("id"))
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if b.ID != nil && *b.ID != d.ID {
		httpapi.WriteError(w, http.StatusBadRequest, "validation_error", "id cannot be changed")
		return
	}
	if !a.admitDestination(w, r, &d, b.apply(&d), b.Type != nil || b.Settings != nil) {
		return
	}
	updated, err := a.repo.UpdateDestination(r.Context(), d)
	a.respond(w, r, http.StatusOK, updated, err, true)
}

func (a *API) deleteDestination(w http.ResponseWriter, r *http.Request) {
	err := a.repo.DeleteDestination(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusNoContent, nil, err, true)
}

func (a *API) listTrackingPlans(w http.ResponseWriter, r *http.Request) {
	p, err := a.repo.ListTrackingPlans(r.Context())
	a.respond(w, r, http.StatusOK, map[string]any{"tracking_plans": nonNil(p)}, err, false)
}

func (a *API) getTrackingPlan(w http.ResponseWriter, r *http.Request) {
	p, err := a.repo.GetTrackingPlan(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusOK, p, err, false)
}

// trackingPlanBody is the JSON of a tracking plan create or update; absent
// fields are left as they are on update. Rules, when present, replaces
// all the rules.
type trackingPlanBody struct {
	ID    *string    `json:"id"`
	Name  *string    `json:"name"`
	Rules *PlanRules `json:"rules"`
}

func (a *API) createTrackingPlan(w http.ResponseWriter, r *http.Request) {
	var b trackingPlanBody
	if !decode(w, r, &b) {
		return
	}
	p := TrackingPlan{ID: deref(b.ID), Name: deref(b.Name), Rules: deref(b.Rules), Origin: OriginAPI}
	created, err := a.repo.CreateTrackingPlan(r.Context(), p)
	a.respond(w, r, http.StatusCreated, created, err, true)
}

func (a *API) updateTrackingPlan(w http.ResponseWriter, r *http.Request) {
	var b trackingPlanBody
	if !decode(w, r, &b) {
		return
	}
	p, err := a.repo.GetTrackingPlan(r.Context(), r.PathValue("id"))
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if b.ID != nil && *b.ID != p.ID {
		httpapi.WriteError(w, http.StatusBadRequest, "validation_error", "id cannot be changed")
		return
	}
	if b.Name != nil {
		p.Name = *b.Name
	}
	if b.Rules != nil {
		p.Rules = *b.Rules
	}
	updated, err := a.repo.UpdateTrackingPlan(r.Context(), p)
	a.respond(w, r, http.StatusOK, updated, err, true)
}

func (a *API) deleteTrackingPlan(w http.ResponseWriter, r *http.Request) {
	err := a.repo.DeleteTrackingPlan(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusNoContent, nil, err, true)
}

func (a *API) listTransformations(w http.ResponseWriter, r *http.Request) {
	t, err := a.repo.ListTransformations(r.Context())
	a.respond(w, r, http.StatusOK, map[string]any{"transformations": nonNil(t)}, err, false)
}

func (a *API) getTransformation(w http.ResponseWriter, r *http.Request) {
	t, err := a.repo.GetTransformation(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusOK, t, err, false)
}

// transformationBody is the JSON of a transformation create or update, in
// Segment's camelCase names plus source and destination; absent fields are
// left as they are on update, and a list, when present, replaces the
// whole list. destination "" makes it source-scoped.
type transformationBody struct {
	ID                           *string                                  `json:"id"`
	Name                         *string                                  `json:"name"`
	Source                       *string                                  `json:"source"`
	Destination                  *string                                  `json:"destination"`
	Enabled                      *bool                                    `json:"enabled"`
	If                           *string                                  `json:"if"`
	NewEventName                 *string                                  `json:"newEventName"`
	PropertyRenames              *[]transform.PropertyRename              `json:"propertyRenames"`
	PropertyDrops                *[]string                                `json:"propertyDrops"`
	PropertyValueTransformations *[]transform.PropertyValueTransformation `json:"propertyValueTransformations"`
	FQLDefinedProperties         *[]transform.FQLDefinedProperty          `json:"fqlDefinedProperties"`
}

func (b *transformationBody) apply(t *Transformation) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&t.Name, b.Name)
	set(&t.Source, b.Source)
	set(&t.Destination, b.Destination)
	set(&t.If, b.If)
	set(&t.NewEventName, b.NewEventName)
	if b.Enabled != nil {
		t.Enabled = b.Enabled
	}
	if b.PropertyRenames != nil {
		t.PropertyRenames = *b.PropertyRenames
	}
	if b.PropertyDrops != nil {
		t.PropertyDrops = *b.PropertyDrops
	}
	if b.PropertyValueTransformations != nil {
		t.PropertyValueTransformations = *b.PropertyValueTransformations
	}
	if b.FQLDefinedProperties != nil {
		t.FQLDefinedProperties = *b.FQLDefinedProperties
	}
}

func (a *API) createTransformation(w http.ResponseWriter, r *http.Request) {
	var b transformationBody
	if !decode(w, r, &b) {
		return
	}
	t := Transformation{Origin: OriginAPI}
	t.ID = deref(b.ID)
	b.apply(&t)
	created, err := a.repo.CreateTransformation(r.Context(), t)
	a.respond(w, r, http.StatusCreated, created, err, true)
}

func (a *API) updateTransformation(w http.ResponseWriter, r *http.Request) {
	var b transformationBody
	if !decode(w, r, &b) {
		return
	}
	t, err := a.repo.GetTransformation(r.Context(), r.PathValue("id"))
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if b.ID != nil && *b.ID != t.ID {
		httpapi.WriteError(w, http.StatusBadRequest, "validation_error", "id cannot be changed")
		return
	}
	b.apply(&t)
	updated, err := a.repo.UpdateTransformation(r.Context(), t)
	a.respond(w, r, http.StatusOK, updated, err, true)
}

func (a *API) deleteTransformation(w http.ResponseWriter, r *http.Request) {
	err := a.repo.DeleteTransformation(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusNoContent, nil, err, true)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
