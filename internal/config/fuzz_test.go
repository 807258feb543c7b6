package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes the loader panic, and that it always
// returns either a config that marshals to JSON or a *LoadError.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, "../../docs/examples/conflux.yaml")
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	lookup := lookupIn(testEnv)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse("fuzz.yaml", data, lookup)
		if err != nil {
			if cfg != nil {
				t.Errorf("config %v returned with error %v", cfg, err)
			}
			le, ok := errors.AsType[*LoadError](err)
			if !ok || len(le.Errors) == 0 {
				t.Fatalf("error %T %v, want a non-empty *LoadError", err, err)
			}
			for _, fe := range le.Errors {
				// A problem in a code file is in that file.
				if (fe.File != "fuzz.yaml" && !strings.HasSuffix(fe.Path, ".code_file")) || fe.Message == "" {
					t.Errorf("incomplete FieldError %+v", fe)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without error")
		}
		if _, err := json.Marshal(cfg); err != nil {
			t.Errorf("loaded config does not marshal to JSON: %v", err)
		}
		for _, s := range cfg.Sources {
			if s.Origin != OriginFile || s.Name == "" {
				t.Errorf("source %+v lacks origin or name", s)
			}
		}
		for _, d := range cfg.Destinations {
			if d.Origin != OriginFile || d.Settings == nil || d.Sources == nil || d.Filters == nil {
				t.Errorf("destination %+v lacks origin, settings, sources or filters", d)
			}
		}
		for _, p := range cfg.TrackingPlans {
			if p.Origin != OriginFile || p.Name == "" || p.Rules.Events == nil {
				t.Errorf("tracking plan %+v lacks origin, name or events", p)
			}
		}
		for _, tr := range cfg.Transformations {
			if tr.Origin != OriginFile || tr.Enabled == nil {
				t.Errorf("transformation %+v lacks origin or enabled", tr)
			}
		}
		if cfg.DedupWindow < MinDedupWindow {
			t.Errorf("DedupWindow = %v, below the minimum", cfg.DedupWindow)
		}
		// What loads must build a workspace without problems: everything
		// was compiled at load time. (A function the file names but does
		// not declare is left to ApplyFile: it may be an API one.)
		ws := BuildWorkspace(1, Settings{}, Contents{Sources: cfg.Sources, Destinations: cfg.Destinations,
			TrackingPlans: cfg.TrackingPlans, Transformations: cfg.Transformations, Functions: cfg.Functions})
		for _, p := range ws.Problems() {
			if !strings.Contains(p.Error(), "which does not exist, is not deployed") {
				t.Errorf("a loaded config builds a workspace with problems: %v", p)
			}
		}
	})
}
