package function

import (
	"strings"
	"testing"
	"time"
)

func TestCompile(t *testing.T) {
	const dest = `async function onTrack(event, settings) {}`
	for _, tc := range []struct {
		name    string
		spec    Spec
		wantErr string // "" when it compiles
	}{
		{"source", Spec{Kind: KindSource, Code: `async function onRequest(request, settings) {}`}, ""},
		{"destination with one handler", Spec{Kind: KindDestination, Code: dest}, ""},
		{"destination with onBatch only", Spec{Kind: KindDestination, Code: `async function onBatch(events) {}`}, ""},
		{"insert with onIdentify", Spec{Kind: KindInsert, Code: `function onIdentify(e) { return e }`}, ""},
		{"handler assigned to a global", Spec{Kind: KindInsert, Code: `globalThis.onTrack = (e) => e`}, ""},
		{"handler assigned without a declaration", Spec{Kind: KindInsert, Code: `onTrack = async (e) => e`}, ""},
		{"handler in a var", Spec{Kind: KindDestination, Code: `var onIdentify = async function (e) {}`}, ""},
		{"unknown kind", Spec{Kind: "transform", Code: dest}, `kind "transform" is not one of`},
		{"empty code", Spec{Kind: KindDestination, Code: " \n\t"}, "the code is empty"},
		{"syntax error names line and column", Spec{Kind: KindDestination, Code: "async function onTrack(event) {\n  return event.x +* 2\n}"}, "Line 2:19 Unexpected token *"},
		{"unterminated string", Spec{Kind: KindDestination, Code: "async function onTrack(event) {\n  return 'abc\n}"}, "Line 2:10"},
		{"early error", Spec{Kind: KindDestination, Code: "async function onTrack(event) {\n  let let = 1\n}"}, "f1:2:7"},
		{"source without onRequest", Spec{Kind: KindSource, Code: dest}, "a source function must define onRequest"},
		{"destination without handlers", Spec{Kind: KindDestination, Code: `function helper() {}`}, "a destination function must define at least one of onTrack"},
		{"destination with only onRequest", Spec{Kind: KindDestination, Code: `async function onRequest() {}`}, "must define at least one of"},
		{"insert without handlers", Spec{Kind: KindInsert, Code: `const onTrack = 1`}, "an insert function must define"},
		{"top-level code that throws", Spec{Kind: KindDestination, Code: "throw new Error('boom')\n" + dest}, "boom"},
		{"top-level reference error", Spec{Kind: KindDestination, Code: "notDefined.x = 1\n" + dest}, "ReferenceError"},
		{"top-level code that never ends", Spec{Kind: KindDestination, Code: "for (;;) {}\n" + dest, Timeout: 100 * time.Millisecond}, "time limit"},
		{"allowed host with a scheme", Spec{Kind: KindDestination, Code: dest, AllowedHosts: []string{"https://api.example.com"}}, `allowed host "https://api.example.com"`},
		{"allowed host with a path", Spec{Kind: KindDestination, Code: dest, AllowedHosts: []string{"api.example.com/v1"}}, "no scheme or path"},
		{"allowed host empty", Spec{Kind: KindDestination, Code: dest, AllowedHosts: []string{""}}, `allowed host ""`},
		{"wildcard in the middle", Spec{Kind: KindDestination, Code: dest, AllowedHosts: []string{"api.*.example.com"}}, "a wildcard may only start it"},
		{"two wildcards", Spec{Kind: KindDestination, Code: dest, AllowedHosts: []string{"*.*.example.com"}}, "a wildcard may only start it"},
		{"good hosts", Spec{Kind: KindDestination, Code: dest, AllowedHosts: []string{"api.example.com", "*.example.org", "127.0.0.1:8080", "[::1]:9000"}}, ""},
		{"negative timeout", Spec{Kind: KindDestination, Code: dest, Timeout: -time.Second}, "timeout -1s is out of range"},
		{"timeout over a minute", Spec{Kind: KindDestination, Code: dest, Timeout: 61 * time.Second}, "timeout 1m1s is out of range"},
		{"timeout of a minute", Spec{Kind: KindDestination, Code: dest, Timeout: time.Minute}, ""},
		{"settings that are not JSON", Spec{Kind: KindDestination, Code: dest, Settings: map[string]any{"f": func() {}}}, "the settings are not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.ID = "f1"
			p, err := Compile(tc.spec)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Compile: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Compile succeeded, want an error with %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Compile: %v, want an error with %q", err, tc.wantErr)
			case err == nil && p.Kind() != tc.spec.Kind:
				t.Fatalf("Kind %q, want %q", p.Kind(), tc.spec.Kind)
			}
		})
	}
}

func TestProgramAccessors(t *testing.T) {
	spec := Spec{ID: "fn_42", Version: 3, Kind: KindDestination, Code: `async function onTrack() {} async function onBatch() {}`, Timeout: 2 * time.Second}
	p, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID() != "fn_42" || p.Version() != 3 || p.Kind() != KindDestination || p.Timeout() != 2*time.Second {
		t.Errorf("ID %q Version %d Kind %q Timeout %s", p.ID(), p.Version(), p.Kind(), p.Timeout())
	}
	for typ, want := range map[string]bool{"track": true, "batch": true, "identify": false, "page": false, "nope": false} {
		if got := p.Handles(typ); got != want {
			t.Errorf("Handles(%q) = %v, want %v", typ, got, want)
		}
	}
	def, _ := Compile(Spec{ID: "d", Kind: KindDestination, Code: `async function onTrack() {}`})
	if def.Timeout() != DefaultTimeout {
		t.Errorf("default Timeout %s, want %s", def.Timeout(), DefaultTimeout)
	}
	same, _ := Compile(spec)
	other := spec
	other.Settings = map[string]any{"k": "v"}
	changed, _ := Compile(other)
	if p.Hash() != same.Hash() || p.Hash() == changed.Hash() || p.Hash() == def.Hash() {
		t.Errorf("hashes: %s %s %s %s", p.Hash(), same.Hash(), changed.Hash(), def.Hash())
	}
}
