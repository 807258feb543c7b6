package config

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
)

// FieldError is one problem with one field of a workspace object. Path is the
// field's path as written in the config file or API body, e.g.
// "sources[2].write_key"; Line and Col locate it in a file (zero for the API).
type FieldError struct {
	File    string
	Line    int
	Col     int
	Path    string
	Message string
}

// Error renders "file:line:col: path: message", leaving out what is unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	switch {
	case e.Line > 0 && e.Col > 0:
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Col)
	case e.Line > 0:
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// idPattern is what a source or destination id may look like: it appears in
// URLs, log subjects and (later) warehouse schema names, so it is kept to a
// safe, lowercase alphabet.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// MaxWriteKeyLen bounds a write key's length.
const MaxWriteKeyLen = 128

// ValidateID reports what is wrong with a source or destination id, or "".
func ValidateID(id string) string {
	switch {
	case id == "":
		return "required"
	case !idPattern.MatchString(id):
		return fmt.Sprintf("%q is not a valid id: use 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit", id)
	}
	return ""
}

// ValidateWriteKey reports what is wrong with a write key, or "". A write key
// travels as the user name of HTTP Basic auth, so it cannot hold a colon, and
// as a URL path segment of the settings endpoint, so it is kept printable.
func ValidateWriteKey(key string) string {
	switch {
	case key == "":
		return "required"
	case len(key) > MaxWriteKeyLen:
		return fmt.Sprintf("longer than %d characters", MaxWriteKeyLen)
	}
	for _, r := range key {
		if r <= ' ' || r > '~' || r == ':' || r == '/' || r == '?' || r == '#' || r == '%' {
			return fmt.Sprintf("contains %q: use printable ASCII without spaces, ':', '/', '?', '#' or '%%'", r)
		}
	}
	return ""
}

// writeKeyAlphabet is base62, like Segment's 32-character write keys.
const writeKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewWriteKey returns a fresh random 32-character write key (190 bits).
func NewWriteKey() string { return randomString(32) }

// NewAdminToken returns a fresh random admin token (64 characters, 380 bits).
func NewAdminToken() string { return randomString(64) }

func randomString(n int) string {
	buf := make([]byte, n)
	// rand.Read never returns an error (crypto/rand, Go 1.24+).
	_, _ = rand.Read(buf)
	for i, b := range buf {
		// 248 = 4*62: reject-free enough; the bias of b%62 over 256 values
		// is removed by re-drawing the few values above 247.
		for b >= 248 {
			var one [1]byte
			_, _ = rand.Read(one[:])
			b = one[0]
		}
		buf[i] = writeKeyAlphabet[int(b)%len(writeKeyAlphabet)]
	}
	return string(buf)
}

// Validate reports every problem of a source, with paths prefixed by prefix
// (e.g. "sources[0]"; empty for an API body). An empty WriteKey is allowed:
// one is generated when the source is stored.
func (s *Source) Validate(prefix string) []*FieldError {
	var errs []*FieldError
	if m := ValidateID(s.ID); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "id"), Message: m})
	}
	if len(s.Name) > 200 {
		errs = append(errs, &FieldError{Path: join(prefix, "name"), Message: "longer than 200 characters"})
	}
	if s.WriteKey != "" {
		if m := ValidateWriteKey(s.WriteKey); m != "" {
			errs = append(errs, &FieldError{Path: join(prefix, "write_key"), Message: m})
		}
	}
	return errs
}

// Validate reports every problem of a destination, with paths prefixed by
// prefix. It checks the shape only; whether Type exists and whether its
// Settings are right is the delivery stage's call, and whether Sources exist
// is the caller's (it knows the workspace).
func (d *Destination) Validate(prefix string) []*FieldError {
	var errs []*FieldError
	if m := ValidateID(d.ID); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "id"), Message: m})
	}
	if len(d.Name) > 200 {
		errs = append(errs, &FieldError{Path: join(prefix, "name"), Message: "longer than 200 characters"})
	}
	if d.Type == "" {
		errs = append(errs, &FieldError{Path: join(prefix, "type"), Message: "required"})
	} else if !idPattern.MatchString(d.Type) {
		errs = append(errs, &FieldError{Path: join(prefix, "type"), Message: fmt.Sprintf("%q is not a valid destination type", d.Type)})
	}
	seen := make(map[string]bool, len(d.Sources))
	for i, src := range d.Sources {
		p := fmt.Sprintf("%s[%d]", join(prefix, "sources"), i)
		if m := ValidateID(src); m != "" {
			errs = append(errs, &FieldError{Path: p, Message: m})
		} else if seen[src] {
			errs = append(errs, &FieldError{Path: p, Message: fmt.Sprintf("source %q listed twice", src)})
		}
		seen[src] = true
	}
	return errs
}

func join(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}
