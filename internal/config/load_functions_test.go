package config

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/function"
)

// parseIn parses data as the config file testdata/<name>, so that its
// code_file paths are relative to testdata.
func parseIn(t *testing.T, name string, data []byte) (*Config, error) {
	t.Helper()
	return parse(filepath.Join("testdata", name), data, lookupIn(testEnv))
}

// mustRead returns the content of the file at path.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseFunctions(t *testing.T) {
	cfg, err := parseIn(t, "functions.good.yaml", mustRead(t, "testdata/functions.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	hookJS := mustRead(t, "testdata/functions/hook.js")
	byID := map[string]Function{}
	var ids []string
	for _, f := range cfg.Functions {
		byID[f.ID] = f
		ids = append(ids, f.ID)
		if f.Origin != OriginFile || f.Settings == nil || f.AllowedHosts == nil {
			t.Errorf("function %s lacks origin, settings or allowed hosts: %+v", f.ID, f)
		}
	}
	if want := []string{"source-hooks", "source-web-insert", "redact", "destination-hook", "destination-hook-insert"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("functions %v, want %v", ids, want)
	}

	src := byID["source-hooks"]
	if src.Kind != function.KindSource || time.Duration(src.Timeout) != 2*time.Second ||
		!reflect.DeepEqual(src.AllowedHosts, []string{"api.example.com"}) || !reflect.DeepEqual(src.Settings, map[string]any{"token": "word"}) {
		t.Errorf("source function = %+v", src)
	}
	// Code is taken as written: ${…} is JavaScript's, not the environment's.
	if !strings.Contains(src.Code, "`${settings.token}`") || !strings.HasPrefix(src.Code, "async function onRequest(request, settings) {\n  const body") {
		t.Errorf("source function code = %q", src.Code)
	}
	if f := byID["source-web-insert"]; f.Kind != function.KindInsert || f.Code != "async function onTrack(event) { return event }" {
		t.Errorf("source insert function = %+v", f)
	}
	if f := byID["redact"]; f.Kind != function.KindInsert || f.Name != "Redact emails" {
		t.Errorf("listed function = %+v", f)
	}
	dest := byID["destination-hook"]
	if dest.Kind != function.KindDestination || dest.Code != string(hookJS) ||
		!reflect.DeepEqual(dest.Settings, map[string]any{"host": "hooks.example.com"}) || !reflect.DeepEqual(dest.AllowedHosts, []string{"*.example.com"}) {
		t.Errorf("destination function = %+v", dest)
	}
	if f := byID["destination-hook-insert"]; f.Kind != function.KindInsert {
		t.Errorf("destination insert function = %+v", f)
	}

	for i, want := range [][2]string{{"source-hooks", ""}, {"", "source-web-insert"}, {"", "redact"}} {
		if s := cfg.Sources[i]; s.Function != want[0] || s.InsertFunction != want[1] {
			t.Errorf("sources[%d] functions = %q, %q; want %q, %q", i, s.Function, s.InsertFunction, want[0], want[1])
		}
	}
	hook, shared := cfg.Destinations[0], cfg.Destinations[1]
	// batch_size is the engine's: it stays on the destination.
	if hook.Settings["function"] != "destination-hook" || fmt.Sprint(hook.Settings["batch_size"]) != "50" || len(hook.Settings) != 2 ||
		hook.InsertFunction != "destination-hook-insert" {
		t.Errorf("the destination declaring its function = %+v", hook)
	}
	if !reflect.DeepEqual(shared.Settings, map[string]any{"function": "destination-hook"}) || shared.InsertFunction != "" {
		t.Errorf("the destination naming a function = %+v", shared)
	}

	// What loads builds a workspace whose functions are compiled.
	ws := BuildWorkspace(1, Settings{}, Contents{Sources: cfg.Sources, Destinations: cfg.Destinations, Functions: cfg.Functions})
	if p := ws.Problems(); p != nil {
		t.Fatalf("Problems = %v", p)
	}
	if p, ok := ws.SourceFunction("hooks"); !ok || p.ID() != "source-hooks" {
		t.Errorf("SourceFunction(hooks) = %v, %v", p, ok)
	}
	if p := ws.SourceRules("app").InsertFunction; p == nil || p.ID() != "redact" {
		t.Errorf("app's insert function = %v", p)
	}
	if p := ws.DestinationInsertFunction("hook"); p == nil || p.ID() != "destination-hook-insert" {
		t.Errorf("hook's insert function = %v", p)
	}
}

func TestParseFunctionProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		// want is the first problem, file its file (the config file
		// when empty), line and col its position.
		want      string
		file      string
		line, col int
	}{
		{
			name: "syntax error in a literal block",
			yaml: `sources:
  - id: hooks
    function:
      code: |
        async function onRequest(request) {
          Segment.track({ event: "x" )
        }
`,
			// The ) on line 2 of the code, column 30: the file's line 6,
			// after the block's 8 spaces of indentation.
			want: "sources[0].function.code: the code does not compile: SyntaxError: source-hooks: Line 2:30 Unexpected token )", line: 6, col: 38,
		},
		{
			name: "syntax error in quoted code",
			yaml: `sources:
  - id: hooks
    function:
      code: "async function onRequest(r) { let a = 1; let a = 2 }"
`,
			want: "sources[0].function.code: the code does not compile: SyntaxError: Identifier 'a' has already been declared", line: 4, col: 59,
		},
		{
			name: "syntax error in a code file",
			yaml: `destinations:
  - id: hook
    type: function
    code_file: functions/broken.js
`,
			want: "destinations[0].code_file: the code does not compile: SyntaxError: destination-hook: Line 6:1 Unexpected end of input",
			file: filepath.Join("testdata", "functions", "broken.js"), line: 6, col: 1,
		},
		{
			name: "error thrown by the top-level code",
			yaml: `sources:
  - id: web
    insert_function:
      code: |
        async function onTrack(e) { return e }
        throw new Error("boom")
`,
			want: "sources[0].insert_function.code: running the top-level code: Error: boom", line: 6, col: 15,
		},
		{
			name: "handler missing",
			yaml: `sources:
  - id: hooks
    function:
      code: |
        async function onTrack(e) { return e }
`,
			want: "sources[0].function.code: a source function must define onRequest(request, settings)", line: 4, col: 13,
		},
		{
			name: "code and code_file",
			yaml: `sources:
  - id: hooks
    function:
      code: "async function onRequest() {}"
      code_file: functions/hook.js
`,
			want: "sources[0].function.code_file: give code or code_file, not both", line: 5, col: 18,
		},
		{
			name: "no code",
			yaml: `sources:
  - id: hooks
    function:
      timeout: 1s
`,
			want: "sources[0].function: code or code_file is required", line: 4, col: 7,
		},
		{
			name: "code file missing",
			yaml: `sources:
  - id: hooks
    function:
      code_file: functions/nope.js
`,
			want: "sources[0].function.code_file: reading the code: open testdata/functions/nope.js: no such file", line: 4, col: 18,
		},
		{
			name: "timeout out of range",
			yaml: `sources:
  - id: hooks
    function:
      code: "async function onRequest() {}"
      timeout: 90s
`,
			want: "sources[0].function.timeout: 1m30s is out of range: up to 1m", line: 5, col: 16,
		},
		{
			name: "bad allowed host",
			yaml: `sources:
  - id: hooks
    function:
      code: "async function onRequest() {}"
      allowed_hosts: [api.example.com, "https://x.example.com/"]
`,
			want: `sources[0].function.allowed_hosts[1]: allowed host "https://x.example.com/" is not a host`, line: 5, col: 40,
		},
		{
			name: "unknown key in a function block",
			yaml: `sources:
  - id: hooks
    function:
      code: "async function onRequest() {}"
      timeuot: 1s
`,
			want: "sources[0].function.timeuot: unknown field (did you mean timeout?)", line: 5, col: 7,
		},
		{
			name: "code on a destination of another type",
			yaml: `destinations:
  - id: hook
    type: webhook
    code: "async function onTrack() {}"
`,
			want: "destinations[0].code: only a destination of type function has code", line: 4, col: 11,
		},
		{
			name: "function destination without a function",
			yaml: `destinations:
  - id: hook
    type: function
    settings: {url: "http://x"}
`,
			want: "destinations[0].settings.function: required: the id of a destination function", line: 4, col: 15,
		},
		{
			name: "reference to a function of another kind",
			yaml: `functions:
  - id: redact
    kind: insert
    code: "async function onTrack(e) { return e }"
sources:
  - id: hooks
    function: redact
`,
			want: `sources[0].function: function "redact" is an insert function, not a source function`, line: 7, col: 15,
		},
		{
			name: "destination function of another kind",
			yaml: `functions:
  - id: redact
    kind: insert
    code: "async function onTrack(e) { return e }"
destinations:
  - id: hook
    type: function
    settings: {function: redact}
`,
			want: `destinations[0].settings.function: function "redact" is an insert function, not a destination function`, line: 8, col: 26,
		},
		{
			name: "bad kind",
			yaml: `functions:
  - id: f
    kind: transform
    code: "async function onTrack(e) { return e }"
`,
			want: `functions[0].kind: "transform" is not a kind of function: use source, destination or insert`, line: 3, col: 11,
		},
		{
			name: "duplicate function id",
			yaml: `sources:
  - id: web
    insert_function:
      code: "async function onTrack(e) { return e }"
functions:
  - id: source-web-insert
    kind: insert
    code: "async function onTrack(e) { return e }"
`,
			want: `functions[0].id: duplicate function id "source-web-insert" (first declared at line 4, sources[0].insert_function)`, line: 6, col: 9,
		},
		{
			name: "function id too long",
			yaml: `sources:
  - id: ` + strings.Repeat("w", 60) + `
    insert_function:
      code: "async function onTrack(e) { return e }"
`,
			want: `sources[0].insert_function: the function's id "source-` + strings.Repeat("w", 60) + `-insert", made from the source id, is not valid`, line: 4, col: 7,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseIn(t, "inline.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			fe := loadErrors(t, err)[0]
			wantFile := cmp.Or(tc.file, filepath.Join("testdata", "inline.yaml"))
			if !strings.HasPrefix(fe.Path+": "+fe.Message, tc.want) || fe.File != wantFile || fe.Line != tc.line || fe.Col != tc.col {
				t.Errorf("first problem:\n %s\nwant\n %s:%d:%d: %s...\nall:\n%v", fe, wantFile, tc.line, tc.col, tc.want, err)
			}
		})
	}
}

// TestCheckFunctionDestinations: the delivery stage's check sees what is
// stored for a destination of type function, {"function": id}, and its
// problems with that setting point at the destination's code.
func TestCheckFunctionDestinations(t *testing.T) {
	cfg, err := parseIn(t, "conflux.yaml", []byte(`destinations:
  - id: hook
    type: function
    code: "async function onTrack(e) {}"
    settings: {token: t}
`))
	if err != nil {
		t.Fatal(err)
	}
	var asked []map[string]any
	err = cfg.CheckDestinations(t.Context(), func(_ context.Context, typ string, settings map[string]any) error {
		asked = append(asked, settings)
		return &FieldError{Path: "function", Message: "no such function here"}
	})
	if !reflect.DeepEqual(asked, []map[string]any{{"function": "destination-hook"}}) {
		t.Errorf("the check was asked about %v", asked)
	}
	want := filepath.Join("testdata", "conflux.yaml") + ":4:11: destinations[0].settings.function: no such function here"
	if err == nil || err.Error() != want {
		t.Errorf("CheckDestinations = %v, want %s", err, want)
	}
}
