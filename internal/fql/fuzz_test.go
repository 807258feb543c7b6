package fql_test

import (
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/fql"
)

// FuzzCompile feeds arbitrary expressions to Compile: it never panics,
// errors are *fql.Error with a position inside the expression, and an
// expression that compiles evaluates on a few fixed events without
// panicking and gives the same result twice.
func FuzzCompile(f *testing.F) {
	for _, tc := range specCases() {
		f.Add(tc.expr)
	}
	for _, tc := range evalCases() {
		f.Add(tc.expr)
	}
	for _, tc := range compileErrCases() {
		f.Add(tc.expr)
	}
	for _, tc := range casingCases() {
		f.Add(tc.fn + "('" + strings.ReplaceAll(tc.in, "'", `\'`) + "')")
	}
	for _, tc := range globCases() {
		if len(tc.s) < 100 {
			f.Add("match('" + tc.s + "', '" + tc.pattern + "')")
		}
	}
	events := []map[string]any{
		nil,
		decode(f, docsEvent),
		decode(f, richEvent),
		decode(f, `{"a":[[[]]],"b":{"":{"":null}},"c":"ア","d":-0.0,"e":1e308,"f":"*?[","g":[{"h":"i"}]}`),
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := fql.Compile(src)
		if err != nil {
			fe, ok := err.(*fql.Error)
			if !ok {
				t.Fatalf("Compile(%q) error %v is %T, want *fql.Error", src, err, err)
			}
			if fe.Pos < 0 || fe.Pos > len(src) || fe.Line < 1 || fe.Col < 1 || fe.Msg == "" {
				t.Fatalf("Compile(%q) error has a bad position or message: %+v", src, fe)
			}
			return
		}
		if e.String() != src {
			t.Fatalf("String() = %q, want %q", e.String(), src)
		}
		for _, ev := range events {
			v1, err1 := e.Eval(ev)
			v2, err2 := e.Eval(ev)
			if (err1 == nil) != (err2 == nil) || v1.String() != v2.String() {
				t.Fatalf("Eval(%q) is not deterministic: %v, %v then %v, %v", src, v1, err1, v2, err2)
			}
			m := e.Match(ev)
			if b, ok := v1.AsBool(); m != (err1 == nil && ok && b) {
				t.Fatalf("Match(%q) = %v but Eval = %v, %v", src, m, v1, err1)
			}
			if err1 != nil {
				if _, ok := err1.(*fql.Error); !ok {
					t.Fatalf("Eval(%q) error %v is %T, want *fql.Error", src, err1, err1)
				}
			}
		}
	})
}
