// Package fql implements Segment's Filter Query Language (FQL), the
// condition language of transformation "if" clauses and destination
// filters. [Compile] parses an expression once; [Expr.Match] and
// [Expr.Eval] then run it against each event, a Segment message decoded by
// encoding/json into map[string]any. A typical filter evaluates without
// allocating.
//
// # Language
//
// Literals are strings in single or double quotes, numbers (-4, 2.5, 1e3),
// true, false, null and lists ['a', 'b']. In a string, \\, \' and \" stand
// for the character; any other backslash before ASCII punctuation is kept,
// so that glob escapes such as 'ab\*d' reach match() intact; a backslash
// before anything else is an error.
//
// A field path names a field of the event by dotted segments: event,
// userId, context.library.name. A segment is made of [A-Za-z0-9_-]; any
// other character must be escaped with a backslash:
//
//	properties.product\ 1.price   the field "price" of properties["product 1"]
//	properties.a\.b               properties["a.b"]
//
// A path starts with a letter, '_' or an escape; and, or, in, true, false
// and null standing alone are keywords (escape them, \and, to name such a
// top-level field). A missing field is null. A segment applied to a list indexes it when it is
// a canonical non-negative integer (properties.products.0.sku); there is no
// implicit mapping over a list's elements, so properties.products.sku is
// null.
//
// Operators, from loosest to tightest binding:
//
//	or                    true if any operand is true
//	and                   true if every operand is true
//	!                     negation
//	= != < <= > >= in     comparisons, which do not chain
//
// so !a = b is !(a = b) and a or b and c is a or (b and c). and, or and !
// take bool or null operands, null counting as false; other types are an
// evaluation error. They short-circuit left to right. = and != are strict
// and type-sensitive (1 = '1' is false) and compare lists and objects by
// content. <, <=, > and >= are false unless both sides are numbers. x in l
// is true if l is a list with an element equal to x, and false if l is not
// a list.
//
// Functions, with the null rules of Segment's reference:
//
//	contains(s, sub)   bool; false unless both are strings
//	match(s, glob)     bool; full-string, case-sensitive glob: * ? [abc]
//	                   [a-z] [^a-z] \x; false unless both are strings or if
//	                   the pattern is malformed
//	length(v)          bytes of a string, elements of a list, 0 for null
//	lowercase(s)       and uppercase, snakecase, kebabcase, titlecase:
//	                   null unless s is a string
//	typeof(v)          "string", "number", "bool", "null", "list" or "object"
//	bool(v)            null → false, number → v != 0, list → non-empty,
//	                   string → strconv.ParseBool
//	string(v)          strings as they are, anything else as JSON text
//	number(v)          numbers and null as they are, strings parsed
//
// snakecase, kebabcase and titlecase split their argument into words —
// runs of letters and digits, further split where camelCase changes case
// ("orderCompleted", "HTTPServer") — drop everything else, and join the
// words with '_', '-' or ' '.
//
// # Errors
//
// Compile reports an invalid expression as an *[Error] with the byte offset,
// line and column, and what was expected there. Eval reports operands of
// the wrong type (for example length(5), 'a' and true) as an *Error at the
// operator, function or field concerned. Match is true only when the result is exactly the
// boolean true; an evaluation error makes it false.
//
// The package deliberately does not apply filters or transformations, has
// no arithmetic, object literals or exists() (write typeof(x) != 'null' or
// x != null), and does not evaluate raw JSON. README.md lists each detail
// settled from Segment's documentation and reference implementations, and
// where it came from.
package fql
