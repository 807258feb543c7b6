package config_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// Code of each kind of function, valid.
const (
	sourceCode = `async function onRequest(request, settings) { Segment.track({event: "Hook", userId: "u"}) }`
	destCode   = `async function onTrack(event, settings) { await fetch("https://api.example.com/t") }`
	insertCode = `async function onTrack(event) { event.properties.seen = true; return event }`
)

func insertFn(id string) config.Function {
	return config.Function{ID: id, Kind: function.KindInsert, Code: insertCode}
}

func mustCreateFunction(t *testing.T, repo *config.Repo, f config.Function) config.Function {
	t.Helper()
	got, err := repo.CreateFunction(t.Context(), f, true)
	if err != nil {
		t.Fatalf("CreateFunction(%s): %v", f.ID, err)
	}
	return got
}

// fieldErrors returns the problems of a *ValidationError, failing the test
// for any other error.
func fieldErrors(t *testing.T, err error) []*config.FieldError {
	t.Helper()
	ve, ok := errors.AsType[*config.ValidationError](err)
	if !ok {
		t.Fatalf("error %v (%T), want a *ValidationError", err, err)
	}
	return ve.Errors
}

func TestRepoFunctionVersions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, clock := newRepo(db)

		v := version(t, repo)
		f := config.Function{ID: "hook", Name: "Hook", Kind: function.KindSource, Code: sourceCode,
			Settings: map[string]any{"secret": "s3"}, Timeout: config.Duration(2 * time.Second)}
		got := mustCreateFunction(t, repo, f)
		want := f
		want.AllowedHosts, want.Version, want.DeployedVersion = []string{}, 1, 1
		want.Origin, want.CreatedAt, want.UpdatedAt = config.OriginAPI, t0, t0
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("CreateFunction returned\n%+v\nwant\n%+v", got, want)
		}
		if version(t, repo) != v+1 {
			t.Error("creating a function did not bump the config version once")
		}
		if got, err := repo.GetFunction(ctx, "hook"); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetFunction = %+v, %v", got, err)
		}

		// An update saves version 2 without deploying it.
		clock.Advance(time.Minute)
		up := got
		up.Code = strings.Replace(sourceCode, `"Hook"`, `"Hook 2"`, 1)
		up.AllowedHosts = []string{"api.example.com"}
		got, err := repo.UpdateFunction(ctx, up, false)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 2 || got.DeployedVersion != 1 || got.Code != up.Code || !got.UpdatedAt.Equal(t0.Add(time.Minute)) || !got.CreatedAt.Equal(t0) {
			t.Fatalf("after the update: %+v, want version 2 saved, 1 deployed", got)
		}
		deployed, err := repo.ListDeployedFunctions(ctx)
		if err != nil || len(deployed) != 1 || deployed[0].Code != sourceCode || deployed[0].DeployedVersion != 1 || deployed[0].Version != 2 {
			t.Fatalf("ListDeployedFunctions = %+v, %v; want version 1's content", deployed, err)
		}
		// Unchanged content changes nothing; a name alone is no version.
		v = version(t, repo)
		if got, err = repo.UpdateFunction(ctx, got, false); err != nil || got.Version != 2 || version(t, repo) != v {
			t.Fatalf("unchanged update: %+v, %v; version %d → %d", got, err, v, version(t, repo))
		}
		got.Name = "Hook!"
		if got, err = repo.UpdateFunction(ctx, got, false); err != nil || got.Version != 2 || got.Name != "Hook!" || version(t, repo) != v+1 {
			t.Fatalf("renamed: %+v, %v", got, err)
		}

		// Deploy the latest, roll back to 1, deploy 2 again by number.
		if got, err = repo.DeployFunction(ctx, "hook", 0); err != nil || got.DeployedVersion != 2 {
			t.Fatalf("DeployFunction(latest) = %+v, %v", got, err)
		}
		if got, err = repo.DeployFunction(ctx, "hook", 1); err != nil || got.DeployedVersion != 1 || got.Version != 2 || got.Code != up.Code {
			t.Fatalf("rollback = %+v, %v; want version 1 deployed, the latest content shown", got, err)
		}
		v = version(t, repo)
		if _, err := repo.DeployFunction(ctx, "hook", 1); err != nil || version(t, repo) != v {
			t.Errorf("deploying the deployed version: %v; version %d → %d", err, v, version(t, repo))
		}
		for _, bad := range []int{3, -1} {
			if _, err := repo.DeployFunction(ctx, "hook", bad); !errors.Is(err, config.ErrNotFound) {
				t.Errorf("DeployFunction(%d) = %v, want ErrNotFound", bad, err)
			}
		}
		if _, err := repo.DeployFunction(ctx, "nope", 0); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("DeployFunction(nope) = %v, want ErrNotFound", err)
		}

		// An update with deploy runs at once.
		up.Code = strings.Replace(sourceCode, `"Hook"`, `"Hook 3"`, 1)
		if got, err = repo.UpdateFunction(ctx, up, true); err != nil || got.Version != 3 || got.DeployedVersion != 3 {
			t.Fatalf("update with deploy = %+v, %v", got, err)
		}

		// Versions, newest first, without code; one version with it.
		vs, err := repo.ListFunctionVersions(ctx, "hook")
		if err != nil || len(vs) != 3 {
			t.Fatalf("ListFunctionVersions = %+v, %v", vs, err)
		}
		for i, v := range vs {
			if v.Version != 3-i || v.Code != "" || v.Deployed != (v.Version == 3) || v.Function != "hook" {
				t.Errorf("versions[%d] = %+v", i, v)
			}
		}
		if !reflect.DeepEqual(vs[2].Settings, map[string]any{"secret": "s3"}) || len(vs[2].AllowedHosts) != 0 || !reflect.DeepEqual(vs[1].AllowedHosts, []string{"api.example.com"}) ||
			time.Duration(vs[2].Timeout) != 2*time.Second || !vs[2].CreatedAt.Equal(t0) {
			t.Errorf("versions 1 and 2 = %+v, %+v", vs[2], vs[1])
		}
		if one, err := repo.GetFunctionVersion(ctx, "hook", 1); err != nil || one.Code != sourceCode || one.Deployed {
			t.Errorf("GetFunctionVersion(1) = %+v, %v", one, err)
		}
		for _, tc := range []struct {
			id      string
			version int
		}{{"hook", 4}, {"nope", 1}} {
			if _, err := repo.GetFunctionVersion(ctx, tc.id, tc.version); !errors.Is(err, config.ErrNotFound) {
				t.Errorf("GetFunctionVersion(%s, %d) = %v, want ErrNotFound", tc.id, tc.version, err)
			}
			if _, err := repo.FunctionSpec(ctx, tc.id, tc.version); !errors.Is(err, config.ErrNotFound) {
				t.Errorf("FunctionSpec(%s, %d) = %v, want ErrNotFound", tc.id, tc.version, err)
			}
		}

		// FunctionSpec: any saved version, 0 the latest, compiles.
		spec, err := repo.FunctionSpec(ctx, "hook", 0)
		if err != nil || spec.Version != 3 || spec.Kind != function.KindSource || spec.Code != up.Code || spec.Timeout != 2*time.Second {
			t.Fatalf("FunctionSpec(0) = %+v, %v", spec, err)
		}
		if spec, err = repo.FunctionSpec(ctx, "hook", 1); err != nil || spec.Version != 1 || spec.Code != sourceCode {
			t.Fatalf("FunctionSpec(1) = %+v, %v", spec, err)
		}
		if p, err := function.Compile(spec); err != nil || p.Version() != 1 {
			t.Errorf("the spec of version 1 compiles to %v, %v", p, err)
		}

		// The kind cannot change.
		up.Kind = function.KindInsert
		up.Code = insertCode
		if _, err := repo.UpdateFunction(ctx, up, false); err == nil || fieldErrors(t, err)[0].Path != "kind" {
			t.Errorf("changing the kind: %v, want a problem at kind", err)
		}
		if _, err := repo.UpdateFunction(ctx, config.Function{ID: "nope", Code: insertCode}, false); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("updating an unknown function: %v", err)
		}

		// Created undeployed: nothing runs until it is deployed.
		if got, err = repo.CreateFunction(ctx, insertFn("later"), false); err != nil || got.DeployedVersion != 0 || got.Version != 1 {
			t.Fatalf("CreateFunction(deploy false) = %+v, %v", got, err)
		}
		if deployed, _ = repo.ListDeployedFunctions(ctx); len(deployed) != 1 {
			t.Errorf("an undeployed function is listed as deployed: %+v", deployed)
		}
		if list, err := repo.ListFunctions(ctx); err != nil || len(list) != 2 || list[0].ID != "hook" || list[1].ID != "later" {
			t.Errorf("ListFunctions = %+v, %v", list, err)
		}
		if _, err := repo.CreateFunction(ctx, insertFn("later"), true); !errors.Is(err, config.ErrConflict) {
			t.Errorf("creating a function twice: %v, want ErrConflict", err)
		}

		// Delete removes the function and its versions.
		if err := repo.DeleteFunction(ctx, "hook"); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.GetFunction(ctx, "hook"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("GetFunction after delete: %v", err)
		}
		if _, err := repo.ListFunctionVersions(ctx, "hook"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("ListFunctionVersions after delete: %v", err)
		}
		if err := repo.DeleteFunction(ctx, "hook"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("deleting twice: %v", err)
		}
		// The id can be used again, from version 1.
		if got := mustCreateFunction(t, repo, config.Function{ID: "hook", Kind: function.KindDestination, Code: destCode}); got.Version != 1 {
			t.Errorf("re-created function = %+v", got)
		}
	})
}

func TestRepoFunctionValidation(t *testing.T) {
	t.Parallel()
	repo := config.NewRepo(storetest.SQLite(t))
	for _, tc := range []struct {
		name     string
		f        config.Function
		path     string
		contains string
	}{
		{"syntax error", config.Function{ID: "f", Kind: function.KindInsert, Code: "async function onTrack(e) {"},
			"code", "the code does not compile: SyntaxError: f: Line 1:28 Unexpected end of input"},
		{"source function without onRequest", config.Function{ID: "f", Kind: function.KindSource, Code: insertCode},
			"code", "a source function must define onRequest"},
		{"insert function without handlers", config.Function{ID: "f", Kind: function.KindInsert, Code: "var x = 1"},
			"code", "insert function must define at least one of onTrack"},
		{"top-level code throws", config.Function{ID: "f", Kind: function.KindInsert, Code: insertCode + "\nnope()"},
			"code", "ReferenceError: nope is not defined"},
		{"no code", config.Function{ID: "f", Kind: function.KindInsert}, "code", "required"},
		{"no kind", config.Function{ID: "f", Code: insertCode}, "kind", "required: source, destination or insert"},
		{"bad kind", config.Function{ID: "f", Kind: "transform", Code: insertCode}, "kind", `"transform" is not a kind of function`},
		{"timeout too long", config.Function{ID: "f", Kind: function.KindInsert, Code: insertCode, Timeout: config.Duration(time.Minute + time.Second)},
			"timeout", "1m1s is out of range: up to 1m (0 or left out: 5s)"},
		{"negative timeout", config.Function{ID: "f", Kind: function.KindInsert, Code: insertCode, Timeout: config.Duration(-time.Second)},
			"timeout", "out of range"},
		{"timeout finer than a millisecond", config.Function{ID: "f", Kind: function.KindInsert, Code: insertCode, Timeout: config.Duration(1500 * time.Microsecond)},
			"timeout", "not a whole number of milliseconds"},
		{"bad host", config.Function{ID: "f", Kind: function.KindInsert, Code: insertCode, AllowedHosts: []string{"ok.example.com", "https://x.example.com"}},
			"allowed_hosts[1]", `allowed host "https://x.example.com" is not a host or host:port`},
		{"bad wildcard", config.Function{ID: "f", Kind: function.KindInsert, Code: insertCode, AllowedHosts: []string{"a*.example.com"}},
			"allowed_hosts[0]", "a wildcard may only start it"},
		{"bad id", config.Function{ID: "F F", Kind: function.KindInsert, Code: insertCode}, "id", "is not a valid id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := repo.CreateFunction(t.Context(), tc.f, true)
			errs := fieldErrors(t, err)
			if errs[0].Path != tc.path || !strings.Contains(errs[0].Message, tc.contains) {
				t.Errorf("problems %v, want first at %s containing %q", err, tc.path, tc.contains)
			}
		})
	}
	// Every bad host is reported, and the code is still compiled.
	_, err := repo.CreateFunction(t.Context(), config.Function{ID: "f", Kind: function.KindInsert, Code: "var x",
		AllowedHosts: []string{"a/b", "ok.example.com", "c d"}}, true)
	var paths []string
	for _, fe := range fieldErrors(t, err) {
		paths = append(paths, fe.Path)
	}
	if want := []string{"allowed_hosts[0]", "allowed_hosts[2]", "code"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("problems at %v, want %v: %v", paths, want, err)
	}
	if list, _ := repo.ListFunctions(t.Context()); len(list) != 0 {
		t.Errorf("a refused function was stored: %+v", list)
	}
}

func TestRepoFunctionReferences(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		mustCreateFunction(t, repo, config.Function{ID: "hook-fn", Kind: function.KindSource, Code: sourceCode})
		mustCreateFunction(t, repo, config.Function{ID: "send", Kind: function.KindDestination, Code: destCode})
		mustCreateFunction(t, repo, insertFn("redact"))

		// Each reference must name a function of the right kind.
		for _, tc := range []struct {
			name    string
			create  func() error
			path    string
			message string
		}{
			{"missing source function", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "s", Function: "nope"})
				return err
			}, "function", `function "nope" does not exist`},
			{"source function of another kind", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "s", Function: "redact"})
				return err
			}, "function", `function "redact" is an insert function, not a source function`},
			{"source insert function of another kind", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "s", InsertFunction: "hook-fn"})
				return err
			}, "insert_function", `function "hook-fn" is a source function, not an insert function`},
			{"destination insert function missing", func() error {
				_, err := repo.CreateDestination(ctx, config.Destination{ID: "d", Type: "webhook", InsertFunction: "nope"})
				return err
			}, "insert_function", `function "nope" does not exist`},
			{"destination function of another kind", func() error {
				_, err := repo.CreateDestination(ctx, config.Destination{ID: "d", Type: "function", Settings: map[string]any{"function": "redact"}})
				return err
			}, "settings.function", `function "redact" is an insert function, not a destination function`},
			{"destination function not named", func() error {
				_, err := repo.CreateDestination(ctx, config.Destination{ID: "d", Type: "function", Settings: map[string]any{"function": 7.0}})
				return err
			}, "settings.function", "required: the id of a destination function"},
		} {
			err := tc.create()
			if errs := fieldErrors(t, err); errs[0].Path != tc.path || errs[0].Message != tc.message {
				t.Errorf("%s: %v, want %s: %s", tc.name, err, tc.path, tc.message)
			}
		}

		src := mustCreateSource(t, repo, config.Source{ID: "hooks", Function: "hook-fn", InsertFunction: "redact"})
		if src.Function != "hook-fn" || src.InsertFunction != "redact" {
			t.Fatalf("created source = %+v", src)
		}
		mustCreateDestination(t, repo, config.Destination{ID: "out", Type: "function", Enabled: true, Sources: []string{"hooks"},
			Settings: map[string]any{"function": "send"}, InsertFunction: "redact"})

		// A function in use cannot be deleted; the error names the users.
		for _, tc := range []struct{ id, users string }{
			{"hook-fn", `sources "hooks"`},
			{"redact", `sources "hooks"; destinations "out"`},
			{"send", `destinations "out"`},
		} {
			err := repo.DeleteFunction(ctx, tc.id)
			if !errors.Is(err, config.ErrConflict) || !strings.Contains(err.Error(), "is used by "+tc.users+":") {
				t.Errorf("DeleteFunction(%s) = %v, want a conflict naming %s", tc.id, err, tc.users)
			}
		}

		// Updates check the references too, and replace them.
		src.InsertFunction = "send"
		if _, err := repo.UpdateSource(ctx, src); err == nil || fieldErrors(t, err)[0].Path != "insert_function" {
			t.Errorf("UpdateSource with a destination function as insert function: %v", err)
		}
		src.InsertFunction = ""
		if got, err := repo.UpdateSource(ctx, src); err != nil || got.InsertFunction != "" || got.Function != "hook-fn" {
			t.Fatalf("UpdateSource dropping the insert function = %+v, %v", got, err)
		}
		d, err := repo.GetDestination(ctx, "out")
		if err != nil || d.InsertFunction != "redact" {
			t.Fatalf("GetDestination = %+v, %v", d, err)
		}
		d.InsertFunction = ""
		if _, err := repo.UpdateDestination(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := repo.DeleteFunction(ctx, "redact"); err != nil {
			t.Errorf("deleting a function no longer used: %v", err)
		}
		if err := repo.DeleteDestination(ctx, "out"); err != nil {
			t.Fatal(err)
		}
		if err := repo.DeleteFunction(ctx, "send"); err != nil {
			t.Errorf("deleting the destination function once its destination is gone: %v", err)
		}
	})
}

// TestManagerLoadsDeployedFunctions: the live workspace runs the deployed
// version, and a deploy reaches it on the next reload.
func TestManagerLoadsDeployedFunctions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		mgr := config.NewManager(repo, config.Settings{}, nil)
		f := mustCreateFunction(t, repo, insertFn("redact"))
		mustCreateSource(t, repo, config.Source{ID: "web", InsertFunction: "redact"})
		if err := mgr.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		p := mgr.Current().SourceRules("web").InsertFunction
		if p == nil || p.Version() != 1 {
			t.Fatalf("live insert function = %v, want version 1", p)
		}
		f.Code = strings.Replace(insertCode, "true", "false", 1)
		if _, err := repo.UpdateFunction(ctx, f, false); err != nil {
			t.Fatal(err)
		}
		if err := mgr.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if p2 := mgr.Current().SourceRules("web").InsertFunction; p2 != p {
			t.Fatalf("after saving version 2, the live insert function = %v, want version 1's program still, not compiled again", p2)
		}
		if _, err := repo.DeployFunction(ctx, "redact", 2); err != nil {
			t.Fatal(err)
		}
		if err := mgr.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if p := mgr.Current().SourceRules("web").InsertFunction; p == nil || p.Version() != 2 {
			t.Fatalf("after deploying version 2, the live insert function = %v", p)
		}
		if fs := mgr.Current().Functions; len(fs) != 1 || fs[0].Code != f.Code || fs[0].DeployedVersion != 2 {
			t.Errorf("Workspace.Functions = %+v", fs)
		}
	})
}
