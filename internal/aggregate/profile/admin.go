package profile

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/httpapi"
)

// RegisterAdmin mounts the identity graph's admin endpoints on mux behind
// auth (the Config API's token): a profile by id or identifier, with what
// it was merged from, and its merge history.
func (a *API) RegisterAdmin(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/profiles/{id}", auth(http.HandlerFunc(a.adminProfile)))
	mux.Handle("GET /api/v1/profiles/{id}/merges", auth(http.HandlerFunc(a.adminMerges)))
}

// adminLookup resolves {id}: prf_<n> (followed to its survivor) or
// type:value in the collection parameter (default users).
func (a *API) adminLookup(w http.ResponseWriter, r *http.Request) (identity.ProfileID, identity.ProfileID, string, bool) {
	if err := httpapi.CheckParams(r.URL.Query(), "collection", "limit"); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", err.Error())
		return 0, 0, "", false
	}
	coll := r.URL.Query().Get("collection")
	if coll == "" {
		coll = identity.Users
	}
	if coll != identity.Users && coll != identity.Accounts {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("collection %q: use users or accounts", coll))
		return 0, 0, "", false
	}
	raw := r.PathValue("id")
	var asked, live identity.ProfileID
	var err error
	if p, ok := identity.ParseProfileID(raw); ok {
		asked = p
		live, coll, err = a.reader.Survivor(r.Context(), p)
	} else if typ, val, ok := strings.Cut(raw, ":"); ok && typ != "" && val != "" {
		live, err = a.reader.Lookup(r.Context(), coll, identity.ID{Type: strings.ToLower(typ), Value: val})
		asked = live
	} else {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("profile %q: want prf_<number> or type:value", raw))
		return 0, 0, "", false
	}
	if errors.Is(err, ErrNotFound) {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no profile %s in %s", raw, coll))
		return 0, 0, "", false
	}
	if err != nil {
		a.logger.Error("profile admin lookup", "id", raw, "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal_error", "the profile store could not answer")
		return 0, 0, "", false
	}
	return asked, live, coll, true
}

func (a *API) adminProfile(w http.ResponseWriter, r *http.Request) {
	asked, live, coll, ok := a.adminLookup(w, r)
	if !ok {
		return
	}
	ids, more, err := a.reader.ExternalIDs(r.Context(), coll, live, nil, nil, 1000)
	if err == nil {
		var meta Metadata
		if meta, err = a.reader.Metadata(r.Context(), live); err == nil {
			body := map[string]any{"id": live.String(), "collection": coll, "external_ids": ids, "external_ids_truncated": more, "metadata": meta}
			if asked != live {
				body["merged_from"] = asked.String()
			}
			httpapi.WriteJSON(w, http.StatusOK, body)
			return
		}
	}
	a.logger.Error("profile admin read", "profile", live, "err", err)
	httpapi.WriteError(w, http.StatusInternalServerError, "internal_error", "the profile store could not answer")
}

func (a *API) adminMerges(w http.ResponseWriter, r *http.Request) {
	_, live, _, ok := a.adminLookup(w, r)
	if !ok {
		return
	}
	limit, err := httpapi.QueryLimit(r.URL.Query().Get("limit"), 100, 1000)
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	merges, err := a.reader.Merges(r.Context(), live, limit)
	if err != nil {
		a.logger.Error("profile admin merges", "profile", live, "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal_error", "the profile store could not answer")
		return
	}
	if merges == nil {
		merges = []MergeRecord{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"profile": live.String(), "merges": merges})
}
