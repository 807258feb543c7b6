package settings

import (
	"errors"
	"fmt"
	"strings"
)

// Template is a setting naming where an event goes — a NATS subject, a
// Redis stream key — with {{source}} and {{type}} placeholders for the
// event's source id and type.
type Template struct {
	parts []templatePart
}

type templatePart struct {
	literal     string
	placeholder string // "source" or "type"; "" for a literal
}

// ParseTemplate parses a template setting; an unclosed "{{" or an unknown
// placeholder is an error.
func ParseTemplate(s string) (Template, error) {
	var t Template
	rest := s
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t.parts = append(t.parts, templatePart{literal: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{literal: rest[:i]})
		}
		end := strings.Index(rest[i:], "}}")
		if end < 0 {
			return Template{}, errors.New(`"{{" without "}}"`)
		}
		name := strings.TrimSpace(rest[i+2 : i+end])
		switch name {
		case "source", "type":
		default:
			return Template{}, fmt.Errorf("unknown placeholder {{%s}}: want {{source}} or {{type}}", name)
		}
		t.parts = append(t.parts, templatePart{placeholder: name})
		rest = rest[i+end+2:]
	}
	return t, nil
}

// Fixed returns the template's text when it has no placeholder.
func (t Template) Fixed() (string, bool) {
	if len(t.parts) == 1 && t.parts[0].placeholder == "" {
		return t.parts[0].literal, true
	}
	return "", len(t.parts) == 0
}

// Render returns the template for an event of source and type typ; write,
// when set, writes each placeholder's value (to escape it), else the value
// is written as it is.
func (t Template) Render(source, typ string, write func(b *strings.Builder, value string)) string {
	if s, ok := t.Fixed(); ok {
		return s
	}
	if write == nil {
		write = func(b *strings.Builder, v string) { b.WriteString(v) }
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.placeholder {
		case "source":
			write(&b, source)
		case "type":
			write(&b, typ)
		default:
			b.WriteString(p.literal)
		}
	}
	return b.String()
}
