package warehouse

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func TestSyncHistory(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		now := time.Now().UTC().Truncate(time.Millisecond)
		for i, s := range []Sync{
			{DestinationID: "dw", SourceID: "web", StartedAt: now.Add(-40 * 24 * time.Hour), FinishedAt: now.Add(-40 * 24 * time.Hour), Status: "success", Rows: map[string]int64{}},
			{DestinationID: "dw", SourceID: "web", StartedAt: now.Add(-time.Minute), FinishedAt: now.Add(-time.Minute), Status: "success", Events: 3, Rows: map[string]int64{"tracks": 3}},
			{DestinationID: "dw", SourceID: "app", StartedAt: now, FinishedAt: now.Add(time.Second), Status: "failure", Events: 2, Rows: map[string]int64{}, Error: "boom"},
			{DestinationID: "other", SourceID: "web", StartedAt: now, FinishedAt: now, Status: "success", Rows: map[string]int64{}},
		} {
			if err := Record(t.Context(), db, s); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		got, err := Syncs(t.Context(), db, "dw", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Status != "failure" || got[0].Error != "boom" || got[1].Rows["tracks"] != 3 || !got[1].StartedAt.Equal(now.Add(-time.Minute)) {
			t.Fatalf("syncs %+v (the 40-day-old one must be gone)", got)
		}
		page, err := Syncs(t.Context(), db, "dw", got[0].ID, 10)
		if err != nil || len(page) != 1 || page[0].ID != got[1].ID {
			t.Errorf("before %d: %+v %v", got[0].ID, page, err)
		}
	})
}

// TestSyncsAPIBadInput: bad parameters are 400 with an error body.
func TestSyncsAPIBadInput(t *testing.T) {
	db := storetest.SQLite(t)
	mux := http.NewServeMux()
	RegisterAPI(mux, func(h http.Handler) http.Handler { return h }, db)
	for path, want := range map[string]int{
		"/api/v1/destinations/dw/syncs":              200,
		"/api/v1/destinations/dw/syncs?limit=0":      400,
		"/api/v1/destinations/dw/syncs?before=x":     400,
		"/api/v1/destinations/dw/syncs?destination=": 400,
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want || (want == 400 && !strings.Contains(rec.Body.String(), `"error"`)) {
			t.Errorf("%s: %d %s, want %d", path, rec.Code, rec.Body, want)
		}
	}
}
