package process

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/httpapi"
)

// RegisterViolationsAPI adds GET /api/v1/sources/{id}/violations to mux,
// wrapped by auth: the tracking-plan violations of a source, per event and
// field, with counts, most recent first. Query: event (one event name),
// since (RFC 3339 time or a duration back from now, e.g. 24h), limit
// (1–1000, default 100).
func RegisterViolationsAPI(mux *http.ServeMux, auth func(http.Handler) http.Handler, v *Violations, current func() *config.Workspace) {
	mux.Handle("GET /api/v1/sources/{id}/violations", auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, ok := current().Source(id); !ok {
			httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no source %q", id))
			return
		}
		q := r.URL.Query()
		limit := 100
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				httpapi.WriteError(w, http.StatusBadRequest, "invalid_query", fmt.Sprintf("limit %q: want a number from 1 to 1000", s))
				return
			}
			limit = n
		}
		var since time.Time
		if s := q.Get("since"); s != "" {
			if d, err := time.ParseDuration(s); err == nil && d >= 0 {
				since = time.Now().Add(-d)
			} else if t, err := time.Parse(time.RFC3339, s); err == nil {
				since = t
			} else {
				httpapi.WriteError(w, http.StatusBadRequest, "invalid_query", fmt.Sprintf("since %q: want an RFC 3339 time or a duration such as 24h", s))
				return
			}
		}
		list, err := v.List(r.Context(), id, q.Get("event"), since, limit)
		if err != nil {
			httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		var total int64
		for _, c := range list {
			total += c.Count
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"violations": list, "total": total})
	})))
}
