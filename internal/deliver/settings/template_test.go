package settings

import (
	"strings"
	"testing"
)

func TestTemplate(t *testing.T) {
	upper := func(b *strings.Builder, v string) { b.WriteString(strings.ToUpper(v)) }
	for _, tc := range []struct {
		in, want, wantEscaped, err string
	}{
		{in: "events", want: "events", wantEscaped: "events"},
		{in: "conflux.{{source}}.{{type}}", want: "conflux.web.track", wantEscaped: "conflux.WEB.TRACK"},
		{in: "{{ source }}-x", want: "web-x", wantEscaped: "WEB-x"},
		{in: "", want: "", wantEscaped: ""},
		{in: "a.{{source", err: `"{{" without "}}"`},
		{in: "a.{{user}}", err: "unknown placeholder {{user}}"},
	} {
		tpl, err := ParseTemplate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTemplate(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", tc.in, err)
		}
		if got := tpl.Render("web", "track", nil); got != tc.want {
			t.Errorf("%q renders %q, want %q", tc.in, got, tc.want)
		}
		if got := tpl.Render("web", "track", upper); got != tc.wantEscaped {
			t.Errorf("%q renders escaped %q, want %q", tc.in, got, tc.wantEscaped)
		}
	}
}
