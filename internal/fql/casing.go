package fql

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The casing functions split a string into words and join them again.
// A word is a run of letters, digits and combining marks; everything else
// (spaces, '_', '-', '.', other punctuation) separates words and is dropped.
// Inside a run, a new word starts
//   - at an upper-case letter that follows a lower-case letter, a digit or an
//     uncased letter ("orderCompleted" → order|Completed, "base64Encode" →
//     base64|Encode), and
//   - at the last upper-case letter of a run of them that a lower-case letter
//     follows ("HTTPServer" → HTTP|Server).
// Letters and digits are never split apart ("sha256", "v2").

// charClass is the role of a rune in word splitting.
type charClass uint8

const (
	classSep charClass = iota
	classUpper
	classLower // lower-case and uncased letters
	classDigit
	classMark // combining marks: part of the word, class of the rune before
)

func classify(r rune) charClass {
	switch {
	case unicode.IsUpper(r) || unicode.IsTitle(r):
		return classUpper
	case unicode.IsLetter(r):
		return classLower
	case unicode.IsNumber(r):
		return classDigit
	case unicode.IsMark(r):
		return classMark
	}
	return classSep
}

// nextWord returns the bounds of the first word of s at or after byte i;
// start == end when there is none.
func nextWord(s string, i int) (start, end int) {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if classify(r) != classSep {
			break
		}
		i += n
	}
	start = i
	prev, prevPrev := classSep, classSep
	prevAt := i // where the previous letter or digit starts
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		c := classify(r)
		switch {
		case c == classSep:
			return start, i
		case c == classMark:
			i += n
			continue
		case c == classUpper && (prev == classLower || prev == classDigit):
			return start, i
		case c == classLower && prev == classUpper && prevPrev == classUpper:
			return start, prevAt
		}
		prevPrev, prev, prevAt = prev, c, i
		i += n
	}
	return start, i
}

// joinWords maps each word with f and joins them with sep.
func joinWords(s string, sep byte, f func(b *strings.Builder, word string)) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; ; {
		start, end := nextWord(s, i)
		if start == end {
			return b.String()
		}
		if b.Len() > 0 {
			b.WriteByte(sep)
		}
		f(&b, s[start:end])
		i = end
	}
}

func writeLower(b *strings.Builder, w string) {
	for _, r := range w {
		b.WriteRune(unicode.ToLower(r))
	}
}

func writeTitle(b *strings.Builder, w string) {
	for i, r := range w {
		if i == 0 {
			b.WriteRune(unicode.ToTitle(r))
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
	}
}

// snakeCase returns the words of s in lower case joined by '_':
// "Order Completed" → "order_completed".
func snakeCase(s string) string { return joinWords(s, '_', writeLower) }

// kebabCase returns the words of s in lower case joined by '-':
// "Order Completed" → "order-completed".
func kebabCase(s string) string { return joinWords(s, '-', writeLower) }

// titleCase returns the words of s capitalized and joined by ' ':
// "order_completed" → "Order Completed".
func titleCase(s string) string { return joinWords(s, ' ', writeTitle) }
