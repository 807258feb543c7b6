package process

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// TestInsertFunction runs a source's insert function after its
// transformation: what the function returns is emitted, what it drops or
// fails on is dropped, and a RetryError is tried again.
func TestInsertFunction(t *testing.T) {
	const code = `
let calls = 0;
function onTrack(event) {
  switch (event.event) {
  case "Drop": throw new DropEvent("no");
  case "Bad": throw new ValidationError("bad");
  case "Flaky": if (++calls < 3) throw new RetryError("later"); break;
  case "Array": return [event];
  case "Nothing": return;
  }
  event.properties.seen = event.properties.renamed === 1;
  return event;
}
function onIdentify(event) { return event; }`
	enabled := true
	ws := config.BuildWorkspace(1, config.Settings{}, config.Contents{
		Sources: []config.Source{{ID: "web", WriteKey: "k", InsertFunction: "ins"}},
		Transformations: []config.Transformation{{Source: "web", Transformation: transform.Transformation{ID: "t",
			If: "type = 'track'", Enabled: &enabled, PropertyRenames: []transform.PropertyRename{{OldName: "n", NewName: "renamed"}}}}},
		Functions: []config.Function{{ID: "ins", Kind: function.KindInsert, Code: code, Version: 1, DeployedVersion: 1}},
	})
	if p := ws.Problems(); len(p) > 0 {
		t.Fatalf("workspace problems: %v", p)
	}
	run := function.NewRunner(function.Options{})
	defer run.Close()
	var inserts atomic.Int64
	r := NewRules(func() *config.Workspace { return ws }, nil, nil).WithFunctions(countingInserter{run, &inserts})
	for _, tc := range []struct {
		name, in string
		want     Outcome
		contains string
		calls    int64
	}{
		{"kept and changed after the transformation", `{"type":"track","event":"Ok","messageId":"1","userId":"u","properties":{"n":1}}`, OutcomeProcessed, `"seen":true`, 1},
		{"DropEvent", `{"type":"track","event":"Drop","messageId":"2","userId":"u","properties":{}}`, OutcomeDropped, "", 1},
		{"ValidationError", `{"type":"track","event":"Bad","messageId":"3","userId":"u","properties":{}}`, OutcomeDropped, "", 1},
		{"RetryError twice, then kept", `{"type":"track","event":"Flaky","messageId":"4","userId":"u","properties":{}}`, OutcomeProcessed, `"Flaky"`, 3},
		{"an array returned", `{"type":"track","event":"Array","messageId":"5","userId":"u","properties":{}}`, OutcomeDropped, "", 1},
		{"nothing returned", `{"type":"track","event":"Nothing","messageId":"6","userId":"u","properties":{}}`, OutcomeDropped, "", 1},
		{"no handler for pages", `{"type":"page","name":"Home","messageId":"7","userId":"u"}`, OutcomeDropped, "", 1},
		{"identify unchanged", `{"type":"identify","messageId":"8","userId":"u","traits":{"a":1}}`, OutcomeProcessed, `"traits":{"a":1}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inserts.Store(0)
			var got []byte
			out := Emitter{source: "web", self: func(_ string, rec []byte) { got = append([]byte(nil), rec...) }, other: func(string, []byte) {}}
			start := time.Now()
			o := r.Process(t.Context(), "web", []byte(tc.in), out)
			if o != tc.want {
				t.Fatalf("outcome %s, want %s", o, tc.want)
			}
			if tc.want == OutcomeProcessed && !strings.Contains(string(got), tc.contains) {
				t.Errorf("emitted %s, want it to hold %s", got, tc.contains)
			}
			if tc.want == OutcomeDropped && got != nil {
				t.Errorf("dropped, yet emitted %s", got)
			}
			if n := inserts.Load(); n != tc.calls {
				t.Errorf("%d calls of the function, want %d", n, tc.calls)
			}
			if tc.calls == 3 && time.Since(start) < time.Second {
				t.Errorf("retried without waiting (%s)", time.Since(start))
			}
		})
	}
}

type countingInserter struct {
	run *function.Runner
	n   *atomic.Int64
}

func (c countingInserter) Insert(ctx context.Context, p *function.Program, ev function.EventIn) function.InsertResult {
	c.n.Add(1)
	return c.run.Insert(ctx, p, ev)
}
