package config

import (
	"testing"

	"github.com/confluxcdp/conflux/internal/function"
)

// TestBuildWorkspaceReusesPrograms: a snapshot keeps the programs of the
// one before whose deployed content is unchanged, and compiles the others.
func TestBuildWorkspaceReusesPrograms(t *testing.T) {
	fn := func(id, code string) Function {
		return Function{ID: id, Kind: function.KindInsert, Code: code, Version: 1, DeployedVersion: 1, Settings: map[string]any{"k": "v"}}
	}
	a, b := "async function onTrack(e) { return e }", "async function onTrack(e) { return null }"
	prev := BuildWorkspace(1, Settings{}, Contents{Functions: []Function{fn("same", a), fn("recreated", a)}})
	next := BuildWorkspace(2, Settings{}, Contents{Functions: []Function{fn("same", a), fn("recreated", b)}, previous: prev})
	p1, _ := prev.Function("same")
	p2, _ := next.Function("same")
	if p1 == nil || p1 != p2 {
		t.Errorf("unchanged function compiled again: %p, %p", p1, p2)
	}
	r1, _ := prev.Function("recreated")
	r2, _ := next.Function("recreated")
	if r2 == nil || r1 == r2 || r1.Hash() == r2.Hash() {
		t.Errorf("a function with the same version but other content kept its old program")
	}
}
