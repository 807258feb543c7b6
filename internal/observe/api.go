package observe

import (
	"net/http"
	"strings"

	"github.com/confluxcdp/conflux/internal/httpapi"
)

// Register mounts the delivery-metrics API on mux, wrapped by auth:
//
//	GET /api/v1/delivery-metrics?source=&destination=&start=&end=&granularity=MINUTE|HOUR|DAY
//	GET /api/v1/delivery-overview?source=&destination=&start=&end=&granularity=
func (r *Recorder) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/delivery-metrics", auth(http.HandlerFunc(r.serveMetrics)))
	mux.Handle("GET /api/v1/delivery-overview", auth(http.HandlerFunc(r.serveOverview)))
}

func (r *Recorder) serveMetrics(w http.ResponseWriter, req *http.Request) {
	win, ok := r.window(w, req)
	if !ok {
		return
	}
	res, err := r.Query(req.Context(), win)
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

func (r *Recorder) serveOverview(w http.ResponseWriter, req *http.Request) {
	win, ok := r.window(w, req)
	if !ok {
		return
	}
	res, err := r.Overview(req.Context(), win)
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// window reads and resolves a query's window, answering 400 when it is
// not valid.
func (r *Recorder) window(w http.ResponseWriter, req *http.Request) (Window, bool) {
	q := req.URL.Query()
	win := Window{Source: q.Get("source"), Destination: q.Get("destination"), Granularity: strings.ToUpper(q.Get("granularity"))}
	err := httpapi.CheckParams(q, "source", "destination", "start", "end", "granularity")
	if err == nil {
		win.Start, err = httpapi.QueryTime("start", q.Get("start"))
	}
	if err == nil {
		win.End, err = httpapi.QueryTime("end", q.Get("end"))
	}
	if err == nil {
		err = win.Resolve(r.opts.Now())
	}
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return Window{}, false
	}
	return win, true
}
