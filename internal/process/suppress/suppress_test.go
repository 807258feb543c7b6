package suppress_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/process/suppress"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func newList(t *testing.T, db *store.DB) *suppress.List {
	t.Helper()
	l := suppress.New(db, nil)
	if err := l.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return l
}

func is(l *suppress.List, id string) bool { return l.Suppressed([]byte(id)) }

func TestRegulations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		l := newList(t, db)
		if !l.Empty() {
			t.Fatal("new list not empty")
		}
		r, err := l.Create(ctx, suppress.SuppressOnly, suppress.SubjectUserID, []string{"u1", "u2", "u1"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != suppress.StatusFinished || len(r.SubjectIDs) != 2 {
			t.Errorf("regulation %+v: want FINISHED with the duplicate id folded", r)
		}
		if !is(l, "u1") || !is(l, "u2") || is(l, "u3") || l.Len() != 2 {
			t.Fatalf("after SUPPRESS_ONLY: u1=%v u2=%v u3=%v len=%d", is(l, "u1"), is(l, "u2"), is(l, "u3"), l.Len())
		}
		// Legacy name, and a deletion type that also suppresses.
		r2, err := l.Create(ctx, "SUPPRESS_AND_DELETE", suppress.SubjectUserID, []string{"u3"})
		if err != nil {
			t.Fatal(err)
		}
		if r2.Type != suppress.SuppressWithDelete || r2.Status != suppress.StatusInitialized || !is(l, "u3") {
			t.Errorf("SUPPRESS_AND_DELETE: %+v suppressed=%v", r2, is(l, "u3"))
		}
		// Deletion alone records, suppresses nobody.
		r3, err := l.Create(ctx, suppress.DeleteOnly, suppress.SubjectUserID, []string{"u9"})
		if err != nil || r3.Status != suppress.StatusInitialized || is(l, "u9") {
			t.Errorf("DELETE_ONLY: %+v %v suppressed=%v", r3, err, is(l, "u9"))
		}
		if _, err := l.Create(ctx, suppress.Unsuppress, suppress.SubjectUserID, []string{"u1"}); err != nil {
			t.Fatal(err)
		}
		if is(l, "u1") || !is(l, "u2") {
			t.Errorf("after UNSUPPRESS u1: u1=%v u2=%v", is(l, "u1"), is(l, "u2"))
		}
		got, err := l.Get(ctx, r.ID)
		if err != nil || got.ID != r.ID || got.Type != suppress.SuppressOnly || len(got.SubjectIDs) != 2 {
			t.Errorf("Get: %+v %v", got, err)
		}
		if _, err := l.Get(ctx, "reg_nope"); !errors.Is(err, suppress.ErrNotFound) {
			t.Errorf("Get unknown: %v", err)
		}
		regs, err := l.ListRegulations(ctx, 10)
		if err != nil || len(regs) != 4 {
			t.Fatalf("ListRegulations: %d %v", len(regs), err)
		}
		ids, err := l.Suppressions(ctx, "", 1)
		if err != nil || len(ids) != 1 || ids[0] != "u2" {
			t.Errorf("Suppressions page 1: %v %v", ids, err)
		}
		ids, _ = l.Suppressions(ctx, "u2", 10)
		if len(ids) != 1 || ids[0] != "u3" {
			t.Errorf("Suppressions page 2: %v", ids)
		}

		// A restart (a fresh list on the same store) sees the same state.
		l2 := newList(t, db)
		if is(l2, "u1") || !is(l2, "u2") || !is(l2, "u3") {
			t.Error("state lost across a reload")
		}
	})
}

func TestInvalidRegulations(t *testing.T) {
	l := newList(t, storetest.SQLite(t))
	many := make([]string, suppress.MaxSubjects+1)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	for _, tc := range []struct {
		typ, subject string
		ids          []string
		want         string
	}{
		{"FORGET", suppress.SubjectUserID, []string{"u"}, "regulationType"},
		{suppress.SuppressOnly, "OBJECT_ID", []string{"u"}, "subjectType"},
		{suppress.SuppressOnly, suppress.SubjectUserID, nil, "subjectIds"},
		{suppress.SuppressOnly, suppress.SubjectUserID, many, "subjectIds"},
		{suppress.SuppressOnly, suppress.SubjectUserID, []string{"ok", " "}, "subjectIds[1]"},
	} {
		_, err := l.Create(t.Context(), tc.typ, tc.subject, tc.ids)
		if !errors.Is(err, suppress.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%s, %s, %d ids) = %v, want ErrInvalid naming %s", tc.typ, tc.subject, len(tc.ids), err, tc.want)
		}
	}
	if !l.Empty() {
		t.Error("an invalid regulation suppressed someone")
	}
}

func TestFullBatchOnBothEngines(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		l := newList(t, db)
		ids := make([]string, suppress.MaxSubjects)
		for i := range ids {
			ids[i] = fmt.Sprintf("user-%05d", i)
		}
		if _, err := l.Create(t.Context(), suppress.SuppressOnly, suppress.SubjectUserID, ids); err != nil {
			t.Fatal(err)
		}
		if l.Len() != suppress.MaxSubjects || !is(l, "user-04999") {
			t.Fatalf("len %d", l.Len())
		}
	})
}

// TestOtherNodeSeesChanges: two lists on one store, as two nodes; a change
// made on one is live on the other within a second.
func TestOtherNodeSeesChanges(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a, b := newList(t, db), newList(t, db)
		done := make(chan error, 1)
		go func() { done <- b.Run(t.Context()) }()
		waitFor := func(what string, cond func() bool) {
			t.Helper()
			deadline := time.Now().Add(time.Second)
			for !cond() {
				if time.Now().After(deadline) {
					t.Fatalf("other node: %s not seen within 1s", what)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if _, err := a.Create(t.Context(), suppress.SuppressOnly, suppress.SubjectUserID, []string{"x"}); err != nil {
			t.Fatal(err)
		}
		waitFor("suppression", func() bool { return is(b, "x") })
		if _, err := a.Create(t.Context(), suppress.Unsuppress, suppress.SubjectUserID, []string{"x"}); err != nil {
			t.Fatal(err)
		}
		waitFor("unsuppression", func() bool { return !is(b, "x") })
	})
}

func TestAPI(t *testing.T) {
	l := newList(t, storetest.SQLite(t))
	mux := http.NewServeMux()
	l.Register(mux, func(h http.Handler) http.Handler { return h })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %s", method, path, raw)
		}
		return resp.StatusCode, out
	}
	st, b := call("POST", "/api/v1/regulations", `{"regulationType":"SUPPRESS_ONLY","subjectType":"USER_ID","subjectIds":["a","b"]}`)
	id, _ := b["data"].(map[string]any)["regulateId"].(string)
	if st != 200 || !strings.HasPrefix(id, "reg_") {
		t.Fatalf("create: %d %v", st, b)
	}
	st, b = call("GET", "/api/v1/regulations/"+id, "")
	reg := b["data"].(map[string]any)["regulation"].(map[string]any)
	if st != 200 || reg["overallStatus"] != "FINISHED" || reg["regulationType"] != "SUPPRESS_ONLY" {
		t.Fatalf("get: %d %v", st, b)
	}
	st, b = call("GET", "/api/v1/suppressions?limit=1", "")
	d := b["data"].(map[string]any)
	if st != 200 || d["cursor"] != "a" || d["count"] != 2.0 || len(d["subjectIds"].([]any)) != 1 {
		t.Fatalf("suppressions: %d %v", st, b)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/api/v1/regulations", `{"regulationType":"NOPE","subjectType":"USER_ID","subjectIds":["a"]}`, 400, "validation_error"},
		{"POST", "/api/v1/regulations", `{"regulationType":"SUPPRESS_ONLY","subjectType":"USER_ID","subjectIds":["a"],"extra":1}`, 400, "invalid_json"},
		{"POST", "/api/v1/regulations", `{`, 400, "invalid_json"},
		{"GET", "/api/v1/regulations/reg_nope", ``, 404, "not_found"},
		{"GET", "/api/v1/regulations?limit=0", ``, 400, "invalid_request"},
	} {
		st, b := call(tc.method, tc.path, tc.body)
		e, _ := b["error"].(map[string]any)
		if st != tc.status || e["code"] != tc.code {
			t.Errorf("%s %s %s: %d %v, want %d %s", tc.method, tc.path, tc.body, st, b, tc.status, tc.code)
		}
	}
}
