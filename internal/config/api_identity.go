package config

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/httpapi"
)

// identityView is the answer of every /api/v1/identity/settings call.
type identityView struct {
	// Settings are the settings as stored; {} when none are (the defaults).
	Settings json.RawMessage `json:"settings"`
	// Effective are the settings with every default written out; see
	// [identity.Settings.Effective].
	Effective identity.Settings `json:"effective"`
	// Origin is who wrote Settings last: file, api, or default for no one.
	Origin    string    `json:"origin"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// identityView reads the stored settings into their answer.
func (a *API) identityView(ctx context.Context) (identityView, error) {
	s, origin, at, err := a.repo.IdentitySettings(ctx)
	if err != nil {
		return identityView{}, err
	}
	v := identityView{Settings: json.RawMessage(`{}`), Effective: s.Effective(), Origin: origin, UpdatedAt: at}
	if origin != OriginDefault {
		v.Settings = json.RawMessage(identityJSON(s))
	}
	return v, nil
}

// answerIdentity answers a change of the identity settings (err is its
// outcome) with the settings, once the change is live.
func (a *API) answerIdentity(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		writeRepoError(w, err)
		return
	}
	if err := a.mgr.Reload(r.Context()); err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "change saved but not yet live: "+err.Error())
		return
	}
	a.getIdentity(w, r)
}

func (a *API) getIdentity(w http.ResponseWriter, r *http.Request) {
	v, err := a.identityView(r.Context())
	a.respond(w, r, http.StatusOK, v, err, false)
}

// putIdentity replaces the settings with the body, an identity.Settings
// object: fields left out take their defaults.
func (a *API) putIdentity(w http.ResponseWriter, r *http.Request) {
	var s identity.Settings
	if !decode(w, r, &s) {
		return
	}
	a.answerIdentity(w, r, a.repo.SetIdentitySettings(r.Context(), s))
}

// deleteIdentity resets the settings to the defaults.
func (a *API) deleteIdentity(w http.ResponseWriter, r *http.Request) {
	a.answerIdentity(w, r, a.repo.ResetIdentitySettings(r.Context()))
}
