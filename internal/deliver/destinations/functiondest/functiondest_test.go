package functiondest_test

import (
	"context"
	"testing"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/functiondest"
	"github.com/confluxcdp/conflux/internal/function"
)

func TestFunctionDestination(t *testing.T) {
	ws := config.BuildWorkspace(1, config.Settings{}, config.Contents{Functions: []config.Function{
		{ID: "each", Kind: function.KindDestination, Version: 1, DeployedVersion: 1, Code: `
async function onTrack(e) { if (e.event === "bad") throw new ValidationError("no"); if (e.event === "later") throw new RetryError("x"); }
async function onDelete(e) {}`},
		{ID: "batch", Kind: function.KindDestination, Version: 1, DeployedVersion: 1, Code: `
async function onBatch(events) { return events.map(e => ({ status: e.properties.status, errormessage: "s" + e.properties.status })); }`},
		{ID: "ins", Kind: function.KindInsert, Version: 1, DeployedVersion: 1, Code: `function onTrack(e) { return e }`},
	}})
	if p := ws.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	run := function.NewRunner(function.Options{})
	defer run.Close()
	typ := functiondest.NewType(functiondest.Runtime{Run: run, Workspace: func() *config.Workspace { return ws }})
	ev := func(typ, name string, status int) *deliver.Event {
		return &deliver.Event{Type: typ, JSON: []byte(`{"type":"` + typ + `","event":"` + name + `","properties":{"status":` + string(rune('0'+status/100)) + `00}}`)}
	}
	for _, tc := range []struct {
		name     string
		settings map[string]any
		events   []*deliver.Event
		want     []deliver.Outcome
		reasons  []string
	}{
		{"per event", map[string]any{"function": "each"},
			[]*deliver.Event{ev("track", "ok", 200), ev("track", "bad", 200), ev("track", "later", 200), ev("page", "", 200), ev("delete", "", 200)},
			[]deliver.Outcome{deliver.Delivered, deliver.Discard, deliver.Retry, deliver.Discard, deliver.Delivered},
			[]string{"", deliver.ReasonInvalidEvent, deliver.ReasonFunctionRetry, deliver.ReasonUnsupportedEventType, ""}},
		{"onBatch statuses", map[string]any{"function": "batch", "batch_size": 50},
			[]*deliver.Event{ev("track", "a", 200), ev("track", "b", 500), ev("track", "c", 400)},
			[]deliver.Outcome{deliver.Delivered, deliver.Retry, deliver.Discard},
			[]string{"", "http_500", "http_400"}},
		{"an unknown function", map[string]any{"function": "nope"}, []*deliver.Event{ev("track", "a", 200)},
			[]deliver.Outcome{deliver.Discard}, []string{deliver.ReasonInvalidSettings}},
		{"an insert function", map[string]any{"function": "ins"}, []*deliver.Event{ev("track", "a", 200)},
			[]deliver.Outcome{deliver.Discard}, []string{deliver.ReasonInvalidSettings}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := typ.New(context.Background(), deliver.Config{ID: "d", Settings: tc.settings})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			res := d.Send(context.Background(), tc.events)
			for i, r := range res {
				if r.Outcome != tc.want[i] || r.Reason != tc.reasons[i] {
					t.Errorf("event %d: %v %q (%s), want %v %q", i, r.Outcome, r.Reason, r.Error, tc.want[i], tc.reasons[i])
				}
			}
		})
	}
	for _, tc := range []struct {
		settings map[string]any
		batch    int
		deletes  bool
	}{
		{map[string]any{"function": "each"}, 1, true},
		{map[string]any{"function": "batch"}, functiondest.DefaultBatchSize, false},
		{map[string]any{"function": "batch", "batch_size": 100}, 100, false},
		{map[string]any{"function": "nope"}, 1, false},
	} {
		if n := typ.BatchSize(tc.settings); n != tc.batch {
			t.Errorf("BatchSize(%v) = %d, want %d", tc.settings, n, tc.batch)
		}
		if got := typ.Deletes(tc.settings); got != tc.deletes {
			t.Errorf("Deletes(%v) = %v", tc.settings, got)
		}
	}
	for _, bad := range []map[string]any{{}, {"function": ""}, {"function": "each", "batch_size": 401}, {"function": "each", "url": "x"}} {
		if _, err := typ.New(context.Background(), deliver.Config{ID: "d", Settings: bad}); err == nil {
			t.Errorf("settings %v accepted", bad)
		}
	}
}
