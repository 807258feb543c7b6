package config

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/confluxcdp/conflux/internal/function"
)

// This file is the part of a [Workspace] that holds its compiled
// functions.

// compileFunctions compiles the deployed version of every function of c,
// recording the ones that do not compile in the problems. A function whose
// deployed content is the one the previous snapshot compiled keeps its
// program: a reload compiles only what changed.
func (w *Workspace) compileFunctions(c Contents) {
	w.programs = make(map[string]*function.Program, len(c.Functions))
	w.sourceFns = make(map[string]*function.Program)
	w.destInserts = make(map[string]*function.Program)
	var prev map[string]*Function
	if c.previous != nil {
		prev = make(map[string]*Function, len(c.previous.Functions))
		for i := range c.previous.Functions {
			prev[c.previous.Functions[i].ID] = &c.previous.Functions[i]
		}
	}
	for i := range c.Functions {
		f := &c.Functions[i]
		if old, ok := prev[f.ID]; ok && sameDeployed(old, f) {
			if p, ok := c.previous.programs[f.ID]; ok {
				w.programs[f.ID] = p // compiled already, by the snapshot before
				continue
			}
		}
		spec := f.Spec()
		spec.Version = f.DeployedVersion
		p, err := function.Compile(spec)
		if err != nil {
			w.problems = append(w.problems, fmt.Errorf("version %d of function %q does not compile; it does not run: %w", f.DeployedVersion, f.ID, err))
			continue
		}
		w.programs[f.ID] = p
	}
}

// uses returns the compiled function id that object (a "source" or
// "destination") objectID uses as a function of kind, or nil, recording
// why in the problems, when it is absent or of another kind.
func (w *Workspace) uses(object, objectID, id string, kind function.Kind) *function.Program {
	p, ok := w.programs[id]
	switch {
	case !ok:
		w.problems = append(w.problems, fmt.Errorf("%s %q uses function %q, which does not exist, is not deployed or does not compile; it does not run", object, objectID, id))
		return nil
	case p.Kind() != kind:
		w.problems = append(w.problems, fmt.Errorf("%s %q uses function %q as %s function, but it is %s function; it does not run",
			object, objectID, id, aKind(kind), aKind(p.Kind())))
		return nil
	}
	return p
}

// Function returns the compiled deployed version of function id, of any
// kind; false when there is no such function, it is not deployed, or it
// does not compile. The program is shared and immutable.
func (w *Workspace) Function(id string) (*function.Program, bool) {
	p, ok := w.programs[id]
	return p, ok
}

// SourceFunction returns the compiled source function of source sourceID,
// which turns the requests to POST /v1/functions/{sourceID} into events;
// false when the source is not a source function (or its function is not
// deployed or does not compile: see [Workspace.Problems]).
func (w *Workspace) SourceFunction(sourceID string) (*function.Program, bool) {
	p, ok := w.sourceFns[sourceID]
	return p, ok
}

// DestinationInsertFunction returns the compiled insert function that runs
// on every event on its way to destination destinationID, or nil when it
// has none (or it is not deployed or does not compile).
func (w *Workspace) DestinationInsertFunction(destinationID string) *function.Program {
	return w.destInserts[destinationID]
}

// sameDeployed reports whether a and b deploy the same version with the
// same content. (A deleted function created again starts at version 1
// with other content, hence the comparison of the content.)
func sameDeployed(a, b *Function) bool {
	return a.DeployedVersion == b.DeployedVersion && a.Kind == b.Kind && a.Code == b.Code && a.Timeout == b.Timeout &&
		slices.Equal(a.AllowedHosts, b.AllowedHosts) && reflect.DeepEqual(a.Settings, b.Settings)
}
