package config

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/confluxcdp/conflux/internal/httpapi"
)

// alertView is an alert rule as the Config API answers it: the rule and,
// when the API has [API.AlertStates], its run-time state.
type alertView struct {
	Alert
	*AlertState
}

// views pairs rules with their states.
func (a *API) views(ctx context.Context, alerts ...Alert) ([]alertView, error) {
	out := make([]alertView, len(alerts))
	var states map[string]AlertState
	if a.AlertStates != nil {
		var err error
		if states, err = a.AlertStates.AlertStates(ctx); err != nil {
			return nil, fmt.Errorf("reading alert states: %w", err)
		}
	}
	for i, al := range alerts {
		out[i].Alert = al
		if a.AlertStates != nil {
			st, ok := states[al.ID]
			if !ok {
				st = AlertState{State: AlertOK}
			}
			out[i].AlertState = &st
		}
	}
	return out, nil
}

// respondAlert answers one rule, with its state, after making any change
// live.
func (a *API) respondAlert(w http.ResponseWriter, r *http.Request, status int, al Alert, err error) {
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if err := a.mgr.Reload(r.Context()); err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "change saved but not yet live: "+err.Error())
		return
	}
	v, err := a.views(r.Context(), al)
	if err != nil {
		writeRepoError(w, err)
		return
	}
	httpapi.WriteJSON(w, status, v[0])
}

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	list, err := a.repo.ListAlerts(r.Context())
	if err != nil {
		writeRepoError(w, err)
		return
	}
	v, err := a.views(r.Context(), list...)
	a.respond(w, r, http.StatusOK, map[string]any{"alerts": v}, err, false)
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request) {
	al, err := a.repo.GetAlert(r.Context(), r.PathValue("id"))
	if err != nil {
		writeRepoError(w, err)
		return
	}
	v, err := a.views(r.Context(), al)
	if err != nil {
		writeRepoError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, v[0])
}

// alertBody is the JSON of an alert rule create or update; absent fields
// are left as they are on update, and notify, when present, replaces the
// whole notify block. On update, a new kind without min_events resets
// min_events to the new kind's default.
type alertBody struct {
	ID          *string         `json:"id"`
	Name        *string         `json:"name"`
	Destination *string         `json:"destination"`
	Source      *string         `json:"source"`
	Enabled     *bool           `json:"enabled"`
	Kind        *AlertKind      `json:"kind"`
	Threshold   *float64        `json:"threshold"`
	Window      json.RawMessage `json:"window"`
	MinEvents   *int64          `json:"min_events"`
	Notify      *AlertNotify    `json:"notify"`
}

// apply sets the fields of al that b holds and returns the problems of
// those it could not read.
func (b *alertBody) apply(al *Alert) []*FieldError {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&al.Name, b.Name)
	set(&al.Destination, b.Destination)
	set(&al.Source, b.Source)
	if b.Enabled != nil {
		al.Enabled = *b.Enabled
	}
	if b.Kind != nil {
		if *b.Kind != al.Kind && b.MinEvents == nil {
			al.MinEvents = 0 // the new kind's default
		}
		al.Kind = *b.Kind
	}
	if b.Threshold != nil {
		al.Threshold = *b.Threshold
	}
	if b.MinEvents != nil {
		al.MinEvents = *b.MinEvents
	}
	if b.Notify != nil {
		al.Notify = *b.Notify
	}
	if len(b.Window) > 0 && string(b.Window) != "null" {
		var d Duration
		if err := d.UnmarshalJSON(b.Window); err != nil {
			return []*FieldError{{Path: "window", Message: err.Error()}}
		}
		al.Window = d
	}
	return nil
}

// admitAlert refuses al, writing a 400 and returning false, if its body
// had problems (bodyErrs): they are answered with the rule's other
// problems, so that one answer lists them all.
func admitAlert(w http.ResponseWriter, al Alert, bodyErrs []*FieldError) bool {
	if len(bodyErrs) == 0 {
		return true
	}
	al.normalize()
	errs := bodyErrs
	for _, fe := range al.Validate("") {
		if !slices.ContainsFunc(bodyErrs, func(b *FieldError) bool { return b.Path == fe.Path }) {
			errs = append(errs, fe)
		}
	}
	writeRepoError(w, &ValidationError{Errors: errs})
	return false
}

func (a *API) createAlert(w http.ResponseWriter, r *http.Request) {
	var b alertBody
	if !decode(w, r, &b) {
		return
	}
	al := Alert{ID: deref(b.ID), Enabled: true, Origin: OriginAPI}
	errs := b.apply(&al)
	if b.Threshold == nil {
		errs = append(errs, &FieldError{Path: "threshold", Message: "required: " + thresholdHelp(al.Kind)})
	}
	if !admitAlert(w, al, errs) {
		return
	}
	created, err := a.repo.CreateAlert(r.Context(), al)
	a.respondAlert(w, r, http.StatusCreated, created, err)
}

func (a *API) updateAlert(w http.ResponseWriter, r *http.Request) {
	var b alertBody
	if !decode(w, r, &b) {
		return
	}
	al, err := a.repo.GetAlert(r.Context(), r.PathValue("id"))
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if b.ID != nil && *b.ID != al.ID {
		httpapi.WriteError(w, http.StatusBadRequest, "validation_error", "id cannot be changed")
		return
	}
	if !admitAlert(w, al, b.apply(&al)) {
		return
	}
	updated, err := a.repo.UpdateAlert(r.Context(), al)
	a.respondAlert(w, r, http.StatusOK, updated, err)
}

func (a *API) deleteAlert(w http.ResponseWriter, r *http.Request) {
	err := a.repo.DeleteAlert(r.Context(), r.PathValue("id"))
	a.respond(w, r, http.StatusNoContent, nil, err, true)
}
