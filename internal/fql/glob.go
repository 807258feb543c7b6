package fql

import "unicode/utf8"

// globMatch reports whether all of s matches pattern. '*' matches any run
// of characters (including none and including '/'), '?' matches one
// character, "[abc]", "[a-z]" and "[^a-z]" match one character in or out of
// a set, and '\x' matches x literally. Characters are UTF-8 runes. A
// malformed pattern matches nothing.
//
// Every item other than '*' consumes exactly one character, so remembering
// only the most recent star and retrying it one character further is
// enough: the match takes O(len(pattern)·len(s)) time and never allocates.
func globMatch(pattern, s string) bool {
	if !validGlob(pattern) {
		return false
	}
	p, i := 0, 0
	starP, starI := -1, 0
	for {
		if p < len(pattern) && pattern[p] == '*' {
			p++
			starP, starI = p, i
			continue
		}
		if i == len(s) {
			return p == len(pattern)
		}
		if p < len(pattern) {
			if np, ni, ok := matchOne(pattern, p, s, i); ok {
				p, i = np, ni
				continue
			}
		}
		if starP < 0 {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starI:])
		starI += n
		p, i = starP, starI
	}
}

// matchOne matches the single-character item at pattern[p] against the
// character at s[i], which exists. It returns the positions after both.
func matchOne(pattern string, p int, s string, i int) (np, ni int, ok bool) {
	r, n := utf8.DecodeRuneInString(s[i:])
	switch pattern[p] {
	case '?':
		return p + 1, i + n, true
	case '[':
		p++
		negate := pattern[p] == '^'
		if negate {
			p++
		}
		in := false
		for first := true; first || pattern[p] != ']'; first = false {
			var lo, hi rune
			lo, p = classChar(pattern, p)
			hi = lo
			if pattern[p] == '-' {
				hi, p = classChar(pattern, p+1)
			}
			if lo <= r && r <= hi {
				in = true
			}
		}
		return p + 1, i + n, in != negate
	case '\\':
		p++
	}
	// A literal: compare bytes, so that invalid UTF-8 only matches itself.
	_, pn := utf8.DecodeRuneInString(pattern[p:])
	lit := pattern[p : p+pn]
	if len(s)-i < pn || s[i:i+pn] != lit {
		return 0, 0, false
	}
	return p + pn, i + pn, true
}

// classChar reads a possibly escaped character of a well-formed class.
func classChar(pattern string, p int) (rune, int) {
	if pattern[p] == '\\' {
		p++
	}
	r, n := utf8.DecodeRuneInString(pattern[p:])
	return r, p + n
}

// validGlob reports whether pattern is well formed: no trailing '\', and
// every '[' closed by a ']' after at least one character or range, where
// '-' and ']' must be escaped except as the range dash and the closing
// bracket.
func validGlob(pattern string) bool {
	for p := 0; p < len(pattern); {
		switch pattern[p] {
		case '\\':
			if p+1 == len(pattern) {
				return false
			}
			_, n := utf8.DecodeRuneInString(pattern[p+1:])
			p += 1 + n
		case '[':
			p++
			if p < len(pattern) && pattern[p] == '^' {
				p++
			}
			for first := true; ; first = false {
				if p == len(pattern) {
					return false
				}
				if pattern[p] == ']' && !first {
					p++
					break
				}
				var ok bool
				if p, ok = validClassChar(pattern, p); !ok {
					return false
				}
				if p < len(pattern) && pattern[p] == '-' {
					if p, ok = validClassChar(pattern, p+1); !ok {
						return false
					}
				}
			}
		default:
			_, n := utf8.DecodeRuneInString(pattern[p:])
			p += n
		}
	}
	return true
}

// validClassChar checks the class character at pattern[p] and returns the
// position after it.
func validClassChar(pattern string, p int) (int, bool) {
	if p == len(pattern) || pattern[p] == '-' || pattern[p] == ']' {
		return p, false
	}
	if pattern[p] == '\\' {
		p++
		if p == len(pattern) {
			return p, false
		}
	}
	_, n := utf8.DecodeRuneInString(pattern[p:])
	return p + n, true
}
