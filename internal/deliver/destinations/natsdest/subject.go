package natsdest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/confluxcdp/conflux/internal/deliver/settings"
)

// subject is a parsed subject setting.
type subject struct {
	tpl settings.Template
}

// parseSubject parses a subject setting and checks that every subject it
// can render is one a client may publish to.
func parseSubject(s string) (*subject, error) {
	tpl, err := settings.ParseTemplate(s)
	if err != nil {
		return nil, err
	}
	out := &subject{tpl: tpl}
	if err := checkSubject(out.render("x", "x")); err != nil {
		return nil, err
	}
	return out, nil
}

// render returns the subject for an event of source and type typ; each
// placeholder's value becomes one token (see writeToken).
func (s *subject) render(source, typ string) string { return s.tpl.Render(source, typ, writeToken) }

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
