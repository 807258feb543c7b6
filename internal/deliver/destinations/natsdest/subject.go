package natsdest

import (
	"errors"
	"fmt"
	"strings"
)

// subject is a parsed subject setting: literal text and placeholders.
type subject struct {
	parts []subjectPart
	// fixed is the whole subject when it has no placeholders.
	fixed string
}

type subjectPart struct {
	literal     string
	placeholder string // "source" or "type"; "" for a literal
}

// parseSubject parses a subject setting and checks that every subject it
// can render is one a client may publish to.
func parseSubject(s string) (*subject, error) {
	out := &subject{}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			out.parts = append(out.parts, subjectPart{literal: rest})
			break
		}
		if i > 0 {
			out.parts = append(out.parts, subjectPart{literal: rest[:i]})
		}
		end := strings.Index(rest[i:], "}}")
		if end < 0 {
			return nil, errors.New(`"{{" without "}}"`)
		}
		name := strings.TrimSpace(rest[i+2 : i+end])
		switch name {
		case "source", "type":
		default:
			return nil, fmt.Errorf("unknown placeholder {{%s}}: want {{source}} or {{type}}", name)
		}
		out.parts = append(out.parts, subjectPart{placeholder: name})
		rest = rest[i+end+2:]
	}
	if err := checkSubject(out.render("x", "x")); err != nil {
		return nil, err
	}
	if len(out.parts) == 1 && out.parts[0].placeholder == "" {
		out.fixed = out.parts[0].literal
	}
	return out, nil
}

// render returns the subject for an event of source and type typ.
func (s *subject) render(source, typ string) string {
	if s.fixed != "" {
		return s.fixed
	}
	var b strings.Builder
	for _, p := range s.parts {
		switch p.placeholder {
		case "source":
			writeToken(&b, source)
		case "type":
			writeToken(&b, typ)
		default:
			b.WriteString(p.literal)
		}
	}
	return b.String()
}

// writeToken writes v as part of one subject token: characters other
// than letters, digits, '_' and '-' become '_', so that a value can add
// neither a token nor a wildcard; an empty value becomes "_".
func writeToken(b *strings.Builder, v string) {
	if v == "" {
		b.WriteByte('_')
		return
	}
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
}

// checkSubject reports why s cannot be published to: an empty token,
// white space, or a wildcard.
func checkSubject(s string) error {
	if strings.ContainsAny(s, " \t\r\n\f\v") {
		return errors.New("white space is not allowed in a subject")
	}
	for _, tok := range strings.Split(s, ".") {
		switch tok {
		case "":
			return errors.New("empty token: a subject has no leading, trailing or double dots")
		case "*", ">":
			return fmt.Errorf("wildcard %q: a message is published to one subject", tok)
		}
	}
	return nil
}
