package suppress

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/confluxcdp/conflux/internal/httpapi"
)

// Register adds the Regulations API to mux, each route wrapped by auth.
// Shapes follow Segment's Public API (spec §5), so existing scripts work:
//
//	POST /api/v1/regulations       {regulationType, subjectType, subjectIds} → {"data": {"regulateId"}}
//	GET  /api/v1/regulations       ?limit=  → {"data": {"regulations": [...]}}
//	GET  /api/v1/regulations/{id}  → {"data": {"regulation": {...}}}
//	GET  /api/v1/suppressions      ?limit=&cursor= → {"data": {"subjectType", "subjectIds", "cursor"}}
func (l *List) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("POST /api/v1/regulations", auth(http.HandlerFunc(l.serveCreate)))
	mux.Handle("GET /api/v1/regulations", auth(http.HandlerFunc(l.serveList)))
	mux.Handle("GET /api/v1/regulations/{id}", auth(http.HandlerFunc(l.serveGet)))
	mux.Handle("GET /api/v1/suppressions", auth(http.HandlerFunc(l.serveSuppressions)))
}

type createBody struct {
	RegulationType string   `json:"regulationType"`
	SubjectType    string   `json:"subjectType"`
	SubjectIDs     []string `json:"subjectIds"`
}

func (l *List) serveCreate(w http.ResponseWriter, r *http.Request) {
	var b createBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
		return
	}
	reg, err := l.Create(r.Context(), b.RegulationType, b.SubjectType, b.SubjectIDs)
	switch {
	case errors.Is(err, ErrInvalid):
		httpapi.WriteError(w, http.StatusBadRequest, "validation_error", err.Error())
		return
	case err != nil && reg.ID == "":
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	case err != nil:
		// Recorded, and will be live on the next poll.
		l.logger.Warn("regulation not yet live", "regulation", reg.ID, "err", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"regulateId": reg.ID}})
}

// limit reads ?limit= between 1 and max (default def).
func limit(w http.ResponseWriter, r *http.Request, def, max int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit must be an integer from 1 to %d", max))
		return 0, false
	}
	return n, true
}

func (l *List) serveList(w http.ResponseWriter, r *http.Request) {
	n, ok := limit(w, r, 50, 1000)
	if !ok {
		return
	}
	regs, err := l.ListRegulations(r.Context(), n)
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	if regs == nil {
		regs = []Regulation{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"regulations": regs}})
}

func (l *List) serveGet(w http.ResponseWriter, r *http.Request) {
	reg, err := l.Get(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		httpapi.WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case err != nil:
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
	default:
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"regulation": reg}})
	}
}

func (l *List) serveSuppressions(w http.ResponseWriter, r *http.Request) {
	n, ok := limit(w, r, 100, 5000)
	if !ok {
		return
	}
	ids, err := l.Suppressions(r.Context(), r.URL.Query().Get("cursor"), n)
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	cursor := ""
	if len(ids) == n {
		cursor = ids[len(ids)-1]
	}
	if ids == nil {
		ids = []string{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"subjectType": SubjectUserID, "subjectIds": ids, "cursor": cursor, "count": l.Len(),
	}})
}
