package config_test

import (
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// deployed is f as the workspace gets it: version v deployed.
func deployed(f config.Function, v int) config.Function {
	f.Version, f.DeployedVersion = v, v
	return f
}

func TestWorkspaceFunctions(t *testing.T) {
	ws := config.BuildWorkspace(1, config.Settings{}, config.Contents{
		Sources: []config.Source{
			{ID: "hooks", WriteKey: "k1", Function: "hook-fn"},
			{ID: "web", WriteKey: "k2", InsertFunction: "redact"},
			{ID: "plain", WriteKey: "k3"},
			{ID: "broken", WriteKey: "k4", Function: "bad", InsertFunction: "hook-fn"},
		},
		Destinations: []config.Destination{
			{ID: "out", Type: "function", Settings: map[string]any{"function": "send"}, InsertFunction: "redact"},
			{ID: "hook", Type: "webhook"},
			{ID: "lost", Type: "function", Settings: map[string]any{"function": "gone"}},
		},
		Functions: []config.Function{
			deployed(config.Function{ID: "hook-fn", Kind: function.KindSource, Code: sourceCode}, 3),
			deployed(config.Function{ID: "redact", Kind: function.KindInsert, Code: insertCode}, 1),
			deployed(config.Function{ID: "send", Kind: function.KindDestination, Code: destCode}, 2),
			deployed(config.Function{ID: "bad", Kind: function.KindSource, Code: "function onRequest( {"}, 1),
		},
	})

	p, ok := ws.Function("send")
	if !ok || p.ID() != "send" || p.Kind() != function.KindDestination || p.Version() != 2 || !p.Handles("track") {
		t.Errorf("Function(send) = %v, %v", p, ok)
	}
	if p, ok := ws.SourceFunction("hooks"); !ok || p.ID() != "hook-fn" || p.Version() != 3 {
		t.Errorf("SourceFunction(hooks) = %v, %v", p, ok)
	}
	for _, id := range []string{"web", "plain", "nope", "broken"} {
		if p, ok := ws.SourceFunction(id); ok {
			t.Errorf("SourceFunction(%s) = %v, want none", id, p)
		}
	}
	if p := ws.SourceRules("web").InsertFunction; p == nil || p.ID() != "redact" {
		t.Errorf("web's insert function = %v", p)
	}
	if p := ws.DestinationInsertFunction("out"); p == nil || p.ID() != "redact" {
		t.Errorf("DestinationInsertFunction(out) = %v", p)
	}
	if p := ws.DestinationInsertFunction("hook"); p != nil {
		t.Errorf("DestinationInsertFunction(hook) = %v, want nil", p)
	}
	// A source with an insert function decodes whole events.
	if r := ws.SourceRules("web"); r.Reads != nil {
		t.Errorf("web reads %v, want everything", r.Reads)
	}

	// The function that does not compile, the reference to it, the one
	// of the wrong kind and the missing one are problems, and absent.
	if _, ok := ws.Function("bad"); ok {
		t.Error("a function that does not compile is present")
	}
	if p := ws.SourceRules("broken").InsertFunction; p != nil {
		t.Errorf("a source function used as insert function runs: %v", p)
	}
	var problems []string
	for _, p := range ws.Problems() {
		problems = append(problems, p.Error())
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{
		`version 1 of function "bad" does not compile`,
		`source "broken" uses function "bad", which does not exist, is not deployed or does not compile`,
		`source "broken" uses function "hook-fn" as an insert function, but it is a source function; it does not run`,
		`destination "lost" uses function "gone", which does not exist`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if len(problems) != 4 {
		t.Errorf("%d problems, want 4:\n%s", len(problems), all)
	}
}

// TestWorkspaceReadsWithInsertFunction: only the insert function makes a
// source decode whole events.
func TestWorkspaceReadsWithInsertFunction(t *testing.T) {
	contents := func(insert string) config.Contents {
		return config.Contents{
			Sources:         []config.Source{{ID: "web", WriteKey: "k", InsertFunction: insert}},
			Transformations: []config.Transformation{{Transformation: transform.Transformation{ID: "t", If: "event = 'A'", NewEventName: "B"}, Source: "web"}},
			Functions:       []config.Function{deployed(insertFn("redact"), 1)},
		}
	}
	if r := config.BuildWorkspace(1, config.Settings{}, contents("")).SourceRules("web"); r.Reads == nil {
		t.Fatal("a source with a transformation only reads everything; the test needs it to read some fields")
	}
	if r := config.BuildWorkspace(1, config.Settings{}, contents("redact")).SourceRules("web"); r.Reads != nil || r.InsertFunction == nil {
		t.Errorf("with an insert function: Reads %v, InsertFunction %v; want everything read", r.Reads, r.InsertFunction)
	}
}
