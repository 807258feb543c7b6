package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// functionsFile is a config file declaring a function of every kind, the
// destination's in hook.js next to it.
const functionsFile = `
sources:
  - id: hooks
    function:
      code: |
        async function onRequest(request, settings) {
          Segment.track({ event: "Hook", userId: "u" })
        }
  - id: web
    insert_function:
      code: "async function onTrack(e) { return e }"
destinations:
  - id: out
    type: function
    sources: [web]
    code_file: hook.js
    settings: {token: t}
    insert_function:
      code: "async function onTrack(e) { return e }"
`

// functionsDir writes conflux.yaml (functionsFile with edit applied) and
// hook.js (code) to dir and loads the file.
func loadFunctionsFile(t *testing.T, dir, code string, edit func(string) string) *config.Config {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "hook.js"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(path, []byte(edit(functionsFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func same(s string) string { return s }

func TestApplyFileFunctions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		dir := t.TempDir()
		apply := func(cfg *config.Config) config.ApplyReport {
			t.Helper()
			rep, err := repo.ApplyFile(ctx, cfg)
			if err != nil {
				t.Fatalf("ApplyFile: %v", err)
			}
			return rep
		}
		get := func(id string) config.Function {
			t.Helper()
			f, err := repo.GetFunction(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}

		rep := apply(loadFunctionsFile(t, dir, destCode, same))
		if want := []string{"source-hooks", "source-web-insert", "destination-out", "destination-out-insert"}; !slices.Equal(rep.Functions.Created, want) {
			t.Fatalf("created functions %v, want %v", rep.Functions.Created, want)
		}
		out := get("destination-out")
		if out.Origin != config.OriginFile || out.Version != 1 || out.DeployedVersion != 1 || out.Code != destCode ||
			out.Kind != function.KindDestination || !reflect.DeepEqual(out.Settings, map[string]any{"token": "t"}) {
			t.Errorf("stored destination function = %+v", out)
		}
		if d, _ := repo.GetDestination(ctx, "out"); !reflect.DeepEqual(d.Settings, map[string]any{"function": "destination-out"}) || d.InsertFunction != "destination-out-insert" {
			t.Errorf("stored destination = %+v", d)
		}
		if s := mustGetSource(t, repo, "hooks"); s.Function != "source-hooks" {
			t.Errorf("stored source = %+v", s)
		}
		mgr := config.NewManager(repo, config.Settings{}, nil)
		if err := mgr.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		ws := mgr.Current()
		if p := ws.Problems(); p != nil {
			t.Errorf("Problems = %v", p)
		}
		if p, ok := ws.SourceFunction("hooks"); !ok || p.Kind() != function.KindSource {
			t.Errorf("SourceFunction(hooks) = %v, %v", p, ok)
		}
		if p, ok := ws.Function("destination-out"); !ok || !p.Handles("track") {
			t.Errorf("Function(destination-out) = %v, %v", p, ok)
		}
		if ws.DestinationInsertFunction("out") == nil || ws.SourceRules("web").InsertFunction == nil {
			t.Error("the insert functions are not live")
		}

		// Unchanged: nothing changes.
		v := version(t, repo)
		rep = apply(loadFunctionsFile(t, dir, destCode, same))
		if rep.Changed() || len(rep.Functions.Unchanged) != 4 || version(t, repo) != v {
			t.Fatalf("re-applying the same file: %+v (version %d → %d)", rep, v, version(t, repo))
		}

		// Changed code: a new version, deployed.
		code2 := strings.Replace(destCode, "/t", "/t2", 1)
		rep = apply(loadFunctionsFile(t, dir, code2, same))
		if !slices.Equal(rep.Functions.Updated, []string{"destination-out"}) || len(rep.Functions.Unchanged) != 3 || version(t, repo) != v+1 {
			t.Fatalf("changed code: %+v", rep.Functions)
		}
		if out = get("destination-out"); out.Version != 2 || out.DeployedVersion != 2 || out.Code != code2 {
			t.Errorf("after the file changed: %+v, want version 2 deployed", out)
		}

		// A version saved through the API stands while the file is
		// unchanged; once the file changes, its content is deployed as a
		// new version.
		out.Code = strings.Replace(destCode, "/t", "/api", 1)
		if _, err := repo.UpdateFunction(ctx, out, true); err != nil {
			t.Fatal(err)
		}
		if rep = apply(loadFunctionsFile(t, dir, code2, same)); rep.Changed() {
			t.Errorf("unchanged file after an API edit: %+v", rep.Functions)
		}
		if out = get("destination-out"); out.Version != 3 || out.DeployedVersion != 3 {
			t.Errorf("the API's version 3 did not stand: %+v", out)
		}
		apply(loadFunctionsFile(t, dir, destCode, same))
		if out = get("destination-out"); out.Version != 4 || out.DeployedVersion != 4 || out.Code != destCode {
			t.Errorf("after the file changed again: %+v, want its content as version 4", out)
		}

		// A function removed from the file goes, its user first changed.
		noInsert := func(s string) string {
			return strings.Replace(s, "    insert_function:\n      code: \"async function onTrack(e) { return e }\"\ndestinations:", "destinations:", 1)
		}
		rep = apply(loadFunctionsFile(t, dir, destCode, noInsert))
		if !slices.Equal(rep.Functions.Deleted, []string{"source-web-insert"}) || !slices.Equal(rep.Sources.Updated, []string{"web"}) {
			t.Fatalf("removing an insert function: functions %+v, sources %+v", rep.Functions, rep.Sources)
		}
		if s := mustGetSource(t, repo, "web"); s.InsertFunction != "" {
			t.Errorf("web still has insert function %q", s.InsertFunction)
		}
		if _, err := repo.GetFunction(ctx, "source-web-insert"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("removed function still stored: %v", err)
		}

		// A file function used by an API object cannot be removed.
		mustCreateSource(t, repo, config.Source{ID: "api-src", InsertFunction: "destination-out-insert"})
		noDestInsert := func(s string) string {
			return strings.Replace(noInsert(s), "    insert_function:\n      code: \"async function onTrack(e) { return e }\"\n", "", 1)
		}
		if _, err := repo.ApplyFile(ctx, loadFunctionsFile(t, dir, destCode, noDestInsert)); !errors.Is(err, config.ErrConflict) ||
			!strings.Contains(err.Error(), `function "destination-out-insert" is used by sources "api-src"`) {
			t.Errorf("removing a function an API source uses: %v", err)
		}

		// References to API functions: accepted of the right kind.
		mustCreateFunction(t, repo, config.Function{ID: "api-send", Kind: function.KindDestination, Code: destCode})
		mustCreateFunction(t, repo, insertFn("api-insert"))
		named := func(ref string) func(string) string {
			return func(s string) string {
				return strings.Replace(noInsert(s), "    code_file: hook.js\n    settings: {token: t}\n", "    settings: {function: "+ref+"}\n", 1)
			}
		}
		rep = apply(loadFunctionsFile(t, dir, destCode, named("api-send")))
		if !slices.Equal(rep.Functions.Deleted, []string{"destination-out"}) {
			t.Errorf("the destination's own function, no longer declared: %+v", rep.Functions)
		}
		for _, tc := range []struct{ ref, want string }{
			{"api-insert", `destinations[0].settings.function: function "api-insert" is an insert function, not a destination function`},
			{"nope", `destinations[0].settings.function: function "nope" is not declared in the file nor created through the API`},
		} {
			_, err := repo.ApplyFile(ctx, loadFunctionsFile(t, dir, destCode, named(tc.ref)))
			if errs := fieldErrors(t, err); errs[0].Path+": "+errs[0].Message != tc.want {
				t.Errorf("reference to %s: %v, want %s", tc.ref, err, tc.want)
			}
		}

		// A file function colliding with an API one is a conflict.
		if err := repo.DeleteSource(ctx, "api-src"); err != nil {
			t.Fatal(err)
		}
		mustCreateFunction(t, repo, config.Function{ID: "source-other", Kind: function.KindSource, Code: sourceCode})
		other := func(s string) string {
			return strings.Replace(s, "  - id: hooks\n", "  - id: other\n", 1)
		}
		if _, err := repo.ApplyFile(ctx, loadFunctionsFile(t, dir, destCode, other)); !errors.Is(err, config.ErrConflict) ||
			!strings.Contains(err.Error(), `sources[0].function: function "source-other" was created through the API`) {
			t.Errorf("a file function with an API function's id: %v", err)
		}
	})
}

// TestApplyFileFunctionProblems: a Config built in code is checked as the
// loader checks a file, with the paths of its functions list.
func TestApplyFileFunctionProblems(t *testing.T) {
	t.Parallel()
	repo := config.NewRepo(storetest.SQLite(t))
	cfg := &config.Config{
		Sources:   []config.Source{{ID: "web", InsertFunction: "f"}},
		Functions: []config.Function{{ID: "f", Kind: function.KindInsert, Code: "async function onTrack(e) {"}},
	}
	_, err := repo.ApplyFile(t.Context(), cfg)
	if errs := fieldErrors(t, err); errs[0].Path != "functions[0].code" || !strings.Contains(errs[0].Message, "does not compile") {
		t.Errorf("ApplyFile with code that does not compile: %v", err)
	}
	cfg.Functions[0].Code = insertCode
	cfg.Functions = append(cfg.Functions, cfg.Functions[0])
	_, err = repo.ApplyFile(t.Context(), cfg)
	if errs := fieldErrors(t, err); errs[0].Path != "functions[1].id" || !strings.Contains(errs[0].Message, `duplicate function id "f" (also functions[0])`) {
		t.Errorf("ApplyFile with a function declared twice: %v", err)
	}
	cfg.Functions = cfg.Functions[:1]
	if rep, err := repo.ApplyFile(t.Context(), cfg); err != nil || !slices.Equal(rep.Functions.Created, []string{"f"}) {
		t.Errorf("ApplyFile = %+v, %v", rep, err)
	}
}
