package transform

import (
	"errors"
	"fmt"
	"slices"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/fql"
)

// Transformation is one of Segment's Transformations (spec §8.3), in the
// shape of the Public API's TransformationV1, plus propertyDrops. When If
// holds for an event, the transformation renames a track event, renames or
// moves properties (traits for identify and group), drops some, and sets
// others to a static value or to the result of an FQL expression.
//
// Property paths are dotted (order.id is the field id of the object
// order); a backslash makes the next character part of a name, so
// ingredients\.salad is the one field "ingredients.salad". Paths reach at
// most four levels below properties, traits or context.
type Transformation struct {
	// ID identifies the transformation in errors. Optional.
	ID string `json:"id,omitempty" yaml:"id,omitempty"`
	// Name describes the transformation; errors use it when ID is empty.
	// Optional.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Enabled turns the transformation on or off. Default: true (unlike
	// the Public API, where it is required).
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// If is the FQL condition an event must meet, for example
	// "event = 'Order Completed'", or "all". Required.
	If string `json:"if" yaml:"if"`
	// NewEventName renames the event of a track call; other types keep
	// theirs. Optional.
	NewEventName string `json:"newEventName,omitempty" yaml:"newEventName,omitempty"`
	// PropertyRenames rename or move properties (track, page, screen) or
	// traits (identify, group); their paths are relative to that object.
	PropertyRenames []PropertyRename `json:"propertyRenames,omitempty" yaml:"propertyRenames,omitempty"`
	// PropertyDrops remove properties or traits, by paths relative to
	// that object as in PropertyRenames. Segment lists dropping elsewhere
	// (destination filters, Protocols); Conflux allows it here too.
	PropertyDrops []string `json:"propertyDrops,omitempty" yaml:"propertyDrops,omitempty"`
	// PropertyValueTransformations set fields to static values.
	PropertyValueTransformations []PropertyValueTransformation `json:"propertyValueTransformations,omitempty" yaml:"propertyValueTransformations,omitempty"`
	// FQLDefinedProperties set fields to the results of FQL expressions.
	FQLDefinedProperties []FQLDefinedProperty `json:"fqlDefinedProperties,omitempty" yaml:"fqlDefinedProperties,omitempty"`
}

// PropertyRename moves the value at OldName to NewName, both paths
// relative to properties (track, page and screen calls) or traits
// (identify and group calls). Missing objects on the way to NewName are
// created, so "orderId" → "order.id" moves a property into a new nested
// object; when there is nothing at OldName, nothing changes.
type PropertyRename struct {
	OldName string `json:"oldName" yaml:"oldName"`
	NewName string `json:"newName" yaml:"newName"`
}

// PropertyValueTransformation sets each of PropertyPaths to PropertyValue,
// creating the field (and missing objects on the way) if needed. Paths are
// absolute and start with properties., traits. or context.
// PropertyValue is any JSON value (Segment's API takes a string); null, or
// leaving it out, sets null.
type PropertyValueTransformation struct {
	PropertyPaths []string `json:"propertyPaths" yaml:"propertyPaths"`
	PropertyValue any      `json:"propertyValue" yaml:"propertyValue"`
}

// FQLDefinedProperty sets PropertyName, an absolute path as in
// [PropertyValueTransformation], to the result of the FQL expression FQL,
// for example lowercase(properties.email). A null result leaves the field
// as it is, so that lowercase(properties.email) does not create an email
// property on events that have none.
type FQLDefinedProperty struct {
	FQL          string `json:"fql" yaml:"fql"`
	PropertyName string `json:"propertyName" yaml:"propertyName"`
}

// Compiled is a [Transformation] ready to apply: its FQL is compiled and its
// paths are split. It is immutable and safe for concurrent use.
type Compiled struct {
	label        string // ID, else Name, for errors
	enabled      bool
	cond         condition
	newEventName string
	renames      []rename
	drops        [][]string // relative to properties or traits
	values       []staticValue
	fqls         []fqlProperty
}

type rename struct{ from, to []string }

type staticValue struct {
	path      []string // absolute
	value     any      // normalized: json.Number numbers
	composite bool     // an object or a list, copied into each event
}

type fqlProperty struct {
	path []string // absolute
	expr *fql.Expr
}

// fqlResult is the value an fqlDefinedProperty computed; set is false for
// null.
type fqlResult struct {
	v   any
	set bool
}

// Compile checks t and compiles its FQL once. Every problem is reported, as
// a [*FieldError] naming the field (joined with [errors.Join] when there are
// several): "if: required", "fqlDefinedProperties[1].fql: fql: 1:5: …",
// "propertyValueTransformations[0].propertyPaths[0]: "userId" is outside
// properties, traits and context: …". A disabled transformation is checked
// all the same.
//
// Besides FQL syntax and path syntax, Compile rejects what it could not
// apply unambiguously: a transformation that changes nothing, a path deeper
// than four levels, a write outside properties, traits and context (top-level
// fields such as userId, messageId and type are out of bounds), and two
// changes to the same field or to a field and the object holding it, as
// Segment does. Renames may swap fields (a → b with b → a).
func Compile(t Transformation) (*Compiled, error) {
	var p problems
	c := compileTransformation(t, &p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// target is a path a transformation writes or removes, for the overlap
// checks. An empty root means relative to properties or traits, whichever
// the event's type uses.
type target struct {
	field string // the field that named it, for errors
	root  string
	segs  []string
}

// overlaps reports whether the two targets can reach the same field.
func (a target) overlaps(b target) bool {
	switch {
	case a.root == b.root:
	case a.root == "" && b.root != "context", b.root == "" && a.root != "context":
	default:
		return false
	}
	return overlaps(a.segs, b.segs)
}

func (a target) String() string {
	if a.root == "" {
		return fmt.Sprintf("%s %q", a.field, formatPath(a.segs))
	}
	return fmt.Sprintf("%s %q", a.field, a.root+"."+formatPath(a.segs))
}

func compileTransformation(t Transformation, p *problems) *Compiled {
	c := &Compiled{label: t.ID, enabled: enabled(t.Enabled), newEventName: t.NewEventName}
	if c.label == "" {
		c.label = t.Name
	}
	var err error
	if c.cond, err = compileCondition(t.If); err != nil {
		p.add("if", err)
	}

	var froms, tos, others []target
	for i, r := range t.PropertyRenames {
		field := fmt.Sprintf("propertyRenames[%d]", i)
		from, ferr := relativePath(r.OldName)
		if ferr != nil {
			p.add(field+".oldName", ferr)
		}
		to, terr := relativePath(r.NewName)
		if terr != nil {
			p.add(field+".newName", terr)
		}
		if ferr != nil || terr != nil {
			continue
		}
		if formatPath(from) == formatPath(to) {
			p.addf(field+".newName", "%q is the same as oldName", r.NewName)
			continue
		}
		c.renames = append(c.renames, rename{from: from, to: to})
		froms = append(froms, target{field: field + ".oldName", segs: from})
		tos = append(tos, target{field: field + ".newName", segs: to})
	}
	for i, d := range t.PropertyDrops {
		field := fmt.Sprintf("propertyDrops[%d]", i)
		segs, err := relativePath(d)
		if err != nil {
			p.add(field, err)
			continue
		}
		c.drops = append(c.drops, segs)
		others = append(others, target{field: field, segs: segs})
	}
	for i, v := range t.PropertyValueTransformations {
		field := fmt.Sprintf("propertyValueTransformations[%d]", i)
		value, err := normalize(v.PropertyValue)
		if err != nil {
			p.add(field+".propertyValue", err)
		}
		if len(v.PropertyPaths) == 0 {
			p.add(field+".propertyPaths", errors.New("required (at least one path)"))
		}
		for j, path := range v.PropertyPaths {
			pfield := fmt.Sprintf("%s.propertyPaths[%d]", field, j)
			segs, perr := absolutePath(path)
			if perr != nil {
				p.add(pfield, perr)
				continue
			}
			if err == nil {
				c.values = append(c.values, staticValue{path: segs, value: value, composite: composite(value)})
			}
			others = append(others, target{field: pfield, root: segs[0], segs: segs[1:]})
		}
	}
	for i, f := range t.FQLDefinedProperties {
		field := fmt.Sprintf("fqlDefinedProperties[%d]", i)
		var e *fql.Expr
		var err error
		if f.FQL == "" {
			err = errors.New("required")
		} else {
			e, err = fql.Compile(f.FQL)
		}
		if err != nil {
			p.add(field+".fql", err)
		}
		segs, perr := absolutePath(f.PropertyName)
		if perr != nil {
			p.add(field+".propertyName", perr)
			continue
		}
		if err == nil {
			c.fqls = append(c.fqls, fqlProperty{path: segs, expr: e})
		}
		others = append(others, target{field: field + ".propertyName", root: segs[0], segs: segs[1:]})
	}

	if t.NewEventName == "" && len(t.PropertyRenames) == 0 && len(t.PropertyDrops) == 0 &&
		len(t.PropertyValueTransformations) == 0 && len(t.FQLDefinedProperties) == 0 {
		p.add("", errors.New("the transformation changes nothing: set newEventName, propertyRenames, "+
			"propertyDrops, propertyValueTransformations or fqlDefinedProperties"))
	}

	// Renames read every source before writing any target, so sources may
	// be targets of other renames (a swap), but no two sources and no two
	// targets may overlap, and no target may replace an object holding
	// another rename's source.
	for j := range froms {
		for i := range j {
			if froms[i].overlaps(froms[j]) {
				p.addf(froms[j].field, "%q overlaps %s", formatPath(froms[j].segs), froms[i])
			}
			if tos[i].overlaps(tos[j]) {
				p.addf(tos[j].field, "%q overlaps %s", formatPath(tos[j].segs), tos[i])
			}
		}
	}
	for i := range tos {
		for j := range froms {
			if i != j && strictPrefix(tos[i].segs, froms[j].segs) {
				p.addf(tos[i].field, "%q would replace the object holding %s", formatPath(tos[i].segs), froms[j])
			}
		}
	}
	// Every other change must be the only one to touch its field.
	renamed := append(froms, tos...)
	for j, o := range others {
		for _, r := range renamed {
			if o.overlaps(r) {
				p.addf(o.field, "%s overlaps %s", o, r)
			}
		}
		for _, q := range others[:j] {
			if o.overlaps(q) {
				p.addf(o.field, "%s overlaps %s", o, q)
			}
		}
	}
	return c
}

// relativePath parses a path below properties or traits. It refuses one
// that starts with properties. or traits., a likely mistake.
func relativePath(s string) ([]string, error) {
	segs, err := parsePath(s)
	if err != nil {
		return nil, err
	}
	if len(segs) > maxLevels {
		return nil, fmt.Errorf("%q is %d levels deep; transformations reach at most %d levels into properties or traits",
			s, len(segs), maxLevels)
	}
	if len(segs) > 1 && (segs[0] == "properties" || segs[0] == "traits") {
		// Absolute paths are the norm in propertyValueTransformations;
		// here one would silently name properties.properties.….
		return nil, fmt.Errorf("%q: this path is relative to properties (or traits, for identify and group calls); write %q",
			s, formatPath(segs[1:]))
	}
	return segs, nil
}

// absolutePath parses a path that starts with properties, traits or
// context and names a field inside it.
func absolutePath(s string) ([]string, error) {
	segs, err := parsePath(s)
	if err != nil {
		return nil, err
	}
	root := segs[0]
	switch {
	case root != "properties" && root != "traits" && root != "context":
		return nil, fmt.Errorf("%q is outside properties, traits and context: "+
			"transformations cannot change top-level fields such as userId, messageId or type; "+
			"start the path with properties., traits. or context.", s)
	case len(segs) == 1:
		return nil, fmt.Errorf("%q is the whole %s object; name a field inside it", s, root)
	case len(segs)-1 > maxLevels:
		return nil, fmt.Errorf("%q is %d levels deep; transformations reach at most %d levels into %s",
			s, len(segs)-1, maxLevels, root)
	}
	return segs, nil
}

// enabled reads an optional enabled flag, which defaults to true.
func enabled(b *bool) bool { return b == nil || *b }

// Enabled reports whether the transformation is on; a disabled one never
// applies.
func (c *Compiled) Enabled() bool { return c.enabled }

// Apply applies the transformation to doc, in place, if it is enabled and
// its If holds, and reports whether it did. It changes, in this order: the
// event name; renamed properties (or traits); dropped ones; static values;
// FQL-defined values. Every FQL expression (the If and each
// fqlDefinedProperty) sees the event as it was before this transformation.
// A change that would have to replace a value that is not an object on its
// way (setting properties.a.b where properties.a is a string) is skipped,
// and a rename skipped so leaves the property where it was.
//
// An FQL evaluation error (for example an If of "properties.total > 1 and
// properties.name", where name holds a string) is returned, naming the
// transformation and the field, with applied false and doc unchanged: the
// caller decides whether the event goes on untransformed or is set aside.
//
// Apply does not retain doc. Objects and lists it puts into doc are its
// own, shared with nothing else.
func (c *Compiled) Apply(doc event.Doc) (applied bool, err error) {
	if !c.enabled {
		return false, nil
	}
	ok, err := c.cond.match(doc)
	if err != nil {
		return false, c.wrap("if", err)
	}
	if !ok {
		return false, nil
	}
	var buf [4]fqlResult
	results := buf[:0]
	for i := range c.fqls {
		v, err := c.fqls[i].expr.Eval(doc)
		if err != nil {
			return false, c.wrap(fmt.Sprintf("fqlDefinedProperties[%d].fql", i), err)
		}
		x, set, err := fromFQL(v)
		if err != nil {
			return false, c.wrap(fmt.Sprintf("fqlDefinedProperties[%d].fql", i), err)
		}
		results = append(results, fqlResult{v: x, set: set})
	}

	if c.newEventName != "" && doc["type"] == "track" {
		doc["event"] = c.newEventName
	}
	if obj := object(doc); obj != nil {
		c.rename(obj)
		for _, d := range c.drops {
			remove(obj, d)
		}
	}
	for _, v := range c.values {
		x := v.value
		if v.composite {
			x, _ = clone(x) // cannot fail: normalized values hold no float64
		}
		set(doc, v.path, x)
	}
	for i, r := range results {
		if r.set {
			set(doc, c.fqls[i].path, r.v)
		}
	}
	return true, nil
}

// rename applies the renames to obj: it takes every source out first, then
// sets the targets, so that renames may swap fields. A target that cannot be
// set gets its value back at its source, which Compile's overlap rules keep
// settable.
func (c *Compiled) rename(obj map[string]any) {
	type moved struct {
		r *rename
		v any
	}
	var buf [8]moved
	ms := buf[:0]
	for i := range c.renames {
		if v, ok := take(obj, c.renames[i].from); ok {
			ms = append(ms, moved{r: &c.renames[i], v: v})
		}
	}
	for _, m := range ms {
		if !set(obj, m.r.to, m.v) {
			set(obj, m.r.from, m.v)
		}
	}
}

// object returns the object renames and drops work in: properties for
// track, page and screen calls, traits for identify and group calls, nil for
// other types or when the event has no such object.
func object(doc event.Doc) map[string]any {
	var key string
	switch doc["type"] {
	case "track", "page", "screen":
		key = "properties"
	case "identify", "group":
		key = "traits"
	default:
		return nil
	}
	m, _ := doc[key].(map[string]any)
	return m
}

// wrap names the transformation and the field in an Apply error.
func (c *Compiled) wrap(field string, err error) error {
	if c.label == "" {
		return fmt.Errorf("transformation: %s: %w", field, err)
	}
	return fmt.Errorf("transformation %q: %s: %w", c.label, field, err)
}

// Chain is a list of transformations applied in order, each seeing the
// result of the ones before it.
type Chain []*Compiled

// CompileChain compiles each transformation with [Compile], reporting the
// problems of all of them at once, with paths starting
// "transformations[i]".
func CompileChain(ts []Transformation) (Chain, error) {
	var p problems
	ch := make(Chain, len(ts))
	for i, t := range ts {
		p.prefix = fmt.Sprintf("transformations[%d]", i)
		ch[i] = compileTransformation(t, &p)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return ch, nil
}

// Apply applies each transformation in order and returns how many applied.
// One that fails to evaluate (see [Compiled.Apply]) is skipped, leaving the
// event as it was, and the others still run; their errors are returned
// joined.
func (ch Chain) Apply(doc event.Doc) (applied int, err error) {
	var errs []error
	for _, c := range ch {
		ok, err := c.Apply(doc)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			applied++
		}
	}
	return applied, errors.Join(errs...)
}

// Roots returns the top-level fields of an event that c may change:
// "event" for a rename of the event, "properties" and "traits" for
// renames and drops, and the first segment of each absolute path it
// sets. An encoder may copy every other field of a changed event as it
// was.
func (c *Compiled) Roots() []string {
	var roots []string
	add := func(r string) {
		if !slices.Contains(roots, r) {
			roots = append(roots, r)
		}
	}
	if c.newEventName != "" {
		add("event")
	}
	if len(c.renames) > 0 || len(c.drops) > 0 {
		add("properties")
		add("traits")
	}
	for _, v := range c.values {
		add(v.path[0])
	}
	for _, f := range c.fqls {
		add(f.path[0])
	}
	return roots
}

// Roots returns the top-level fields any transformation of ch may change
// (see [Compiled.Roots]).
func (ch Chain) Roots() []string {
	var roots []string
	for _, c := range ch {
		for _, r := range c.Roots() {
			if !slices.Contains(roots, r) {
				roots = append(roots, r)
			}
		}
	}
	return roots
}

// Reads returns the top-level fields of an event that c reads or changes:
// those its conditions and expressions name, the ones it writes (see
// [Compiled.Roots]), and type, which decides between properties and
// traits. A caller may leave every other field undecoded.
func (c *Compiled) Reads() []string {
	roots := append([]string{"type"}, c.Roots()...)
	add := func(fs []string) {
		for _, f := range fs {
			if !slices.Contains(roots, f) {
				roots = append(roots, f)
			}
		}
	}
	if c.cond.expr != nil {
		add(c.cond.expr.Fields())
	}
	for _, f := range c.fqls {
		add(f.expr.Fields())
	}
	return roots
}

// Reads returns the top-level fields any transformation of ch reads or
// changes (see [Compiled.Reads]).
func (ch Chain) Reads() []string {
	var out []string
	for _, c := range ch {
		for _, r := range c.Reads() {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}
