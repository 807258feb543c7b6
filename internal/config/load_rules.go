package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// This file decodes what the config file says about tracking plans,
// transformations, destination filters and the dedup window. It walks the
// YAML nodes itself, as load.go does, so that every unknown key and every
// problem found later by the plan and transform compilers has a position.

// The keys of the mappings decoded here. Transformations and filters use
// Segment's camelCase names, as the transform package does.
var (
	trackingPlanFields = []string{"id", "name", "rules"}
	rulesFields        = []string{"events", "identify", "group", "common"}
	// schemaFields are plan.Enforcement's yaml keys and the two forwards.
	schemaFields         = append(enforcementKeys(), "forward_violations_to", "forward_blocked_to")
	transformationFields = []string{
		"id", "name", "source", "destination", "enabled", "if", "newEventName",
		"propertyRenames", "propertyDrops", "propertyValueTransformations", "fqlDefinedProperties",
	}
	renameFields      = []string{"oldName", "newName"}
	valueFields       = []string{"propertyPaths", "propertyValue"}
	fqlPropertyFields = []string{"fql", "propertyName"}
	filterFields      = []string{"id", "if", "actions", "title", "description", "enabled"}
	actionFields      = []string{"type", "percent", "path", "fields"}
)

// enforcementKeys returns the yaml keys of plan.Enforcement's fields, so
// that the file accepts exactly the controls the plan package knows.
func enforcementKeys() []string {
	t := reflect.TypeFor[plan.Enforcement]()
	keys := make([]string, 0, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		keys = append(keys, name)
	}
	return keys
}

// setEnforcement sets the control of e named by its yaml key.
func setEnforcement(e *plan.Enforcement, key, value string) bool {
	v := reflect.ValueOf(e).Elem()
	for f := range reflect.TypeFor[plan.Enforcement]().Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			v.FieldByIndex(f.Index).SetString(value)
			return true
		}
	}
	return false
}

// dedupWindow decodes dedup_window: a Go duration of at least an hour.
func (l *loader) dedupWindow(path string, n *yaml.Node) (time.Duration, bool) {
	d, ok := l.duration(path, n, "720h (30 days) or 168h (7 days)")
	if !ok {
		return 0, false
	}
	if d < MinDedupWindow {
		l.errorf(n, path, "%s is too short: at least %s", Duration(d), MinDedupWindow)
		return 0, false
	}
	return d, true
}

// trackingPlan decodes one entry of tracking_plans.
func (l *loader) trackingPlan(path string, n *yaml.Node) TrackingPlan {
	p := TrackingPlan{Origin: OriginFile, Rules: PlanRules{Events: map[string]json.RawMessage{}}}
	m := l.mapping(path, n)
	if m == nil {
		return p
	}
	l.fields(path, m, trackingPlanFields, func(key string, v *yaml.Node) {
		fp := join(path, key)
		switch key {
		case "id":
			p.ID, _ = l.str(fp, v)
		case "name":
			p.Name, _ = l.str(fp, v)
		case "rules":
			l.decoded(fp, func() { p.Rules = l.rules(fp, v) })
		}
	})
	if p.Name == "" {
		p.Name = p.ID
	}
	return p
}

// rules decodes the rules of a tracking plan: JSON Schemas written as YAML
// mappings.
func (l *loader) rules(path string, n *yaml.Node) PlanRules {
	r := PlanRules{Events: map[string]json.RawMessage{}}
	if isNullNode(resolveAlias(n)) {
		l.nodes[path] = n
		return r
	}
	m := l.mapping(path, n)
	if m == nil {
		return r
	}
	l.fields(path, m, rulesFields, func(key string, v *yaml.Node) {
		fp := join(path, key)
		switch key {
		case "events":
			l.events(fp, v, r.Events)
		case "identify":
			r.Identify = l.schema(fp, v)
		case "group":
			r.Group = l.schema(fp, v)
		case "common":
			r.Common = l.schema(fp, v)
		}
	})
	return r
}

// events decodes the events of a plan's rules into events.
func (l *loader) events(path string, n *yaml.Node, events map[string]json.RawMessage) {
	if isNullNode(resolveAlias(n)) {
		l.nodes[path] = n
		return
	}
	m := l.mapping(path, n)
	if m == nil {
		return
	}
	seen := make(map[string]*yaml.Node, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		name, ok := l.key(fixedPath(path), k, seen)
		if !ok || !l.spend(v) {
			continue
		}
		s := l.schema(join(path, name), v)
		if s == nil {
			s = json.RawMessage(`{}`) // planned, without constraints
		}
		events[name] = s
	}
}

// schema decodes one JSON Schema written as a YAML mapping; null is no
// schema (nil).
func (l *loader) schema(path string, n *yaml.Node) json.RawMessage {
	l.nodes[path] = n
	r := resolveAlias(n)
	if isNullNode(r) {
		return nil
	}
	if r.Kind != yaml.MappingNode {
		l.errorf(n, path, "must be a mapping: a JSON Schema written in YAML, like {type: object, properties: {…}}")
		return nil
	}
	v, ok := l.value(&valuePath{key: path, index: -1}, n, nil).(map[string]any)
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		l.errorf(n, path, "cannot be encoded as JSON: %v", err)
		return nil
	}
	return b
}

// schemaBlock decodes the schema block of a source.
func (l *loader) schemaBlock(path string, n *yaml.Node) SourceSchema {
	var s SourceSchema
	if isNullNode(resolveAlias(n)) {
		l.nodes[path] = n
		return s
	}
	m := l.mapping(path, n)
	if m == nil {
		return s
	}
	l.fields(path, m, schemaFields, func(key string, v *yaml.Node) {
		value, _ := l.str(join(path, key), v)
		switch key {
		case "forward_violations_to":
			s.ForwardViolationsTo = value
		case "forward_blocked_to":
			s.ForwardBlockedTo = value
		default:
			setEnforcement(&s.Enforcement, key, value)
		}
	})
	return s
}

// transformation decodes one entry of transformations.
func (l *loader) transformation(path string, n *yaml.Node) Transformation {
	t := Transformation{Origin: OriginFile}
	m := l.mapping(path, n)
	if m == nil {
		return t
	}
	l.fields(path, m, transformationFields, func(key string, v *yaml.Node) {
		fp := join(path, key)
		switch key {
		case "id":
			t.ID, _ = l.str(fp, v)
		case "name":
			t.Name, _ = l.str(fp, v)
		case "source":
			t.Source, _ = l.str(fp, v)
		case "destination":
			t.Destination, _ = l.str(fp, v)
		case "enabled":
			if b, ok := l.boolean(fp, v); ok {
				t.Enabled = &b
			}
		case "if":
			t.If, _ = l.str(fp, v)
		case "newEventName":
			t.NewEventName, _ = l.str(fp, v)
		case "propertyRenames":
			for i, item := range l.list(fp, v) {
				ip := fmt.Sprintf("%s[%d]", fp, i)
				var r transform.PropertyRename
				if im := l.mapping(ip, item); im != nil {
					l.fields(ip, im, renameFields, func(key string, v *yaml.Node) {
						s, _ := l.str(join(ip, key), v)
						if key == "oldName" {
							r.OldName = s
						} else {
							r.NewName = s
						}
					})
				}
				t.PropertyRenames = append(t.PropertyRenames, r)
			}
		case "propertyDrops":
			t.PropertyDrops = l.strings(fp, v)
		case "propertyValueTransformations":
			for i, item := range l.list(fp, v) {
				ip := fmt.Sprintf("%s[%d]", fp, i)
				var pv transform.PropertyValueTransformation
				if im := l.mapping(ip, item); im != nil {
					l.fields(ip, im, valueFields, func(key string, v *yaml.Node) {
						kp := join(ip, key)
						if key == "propertyPaths" {
							pv.PropertyPaths = l.strings(kp, v)
							return
						}
						l.nodes[kp] = v
						pv.PropertyValue = l.value(&valuePath{key: kp, index: -1}, v, nil)
					})
				}
				t.PropertyValueTransformations = append(t.PropertyValueTransformations, pv)
			}
		case "fqlDefinedProperties":
			for i, item := range l.list(fp, v) {
				ip := fmt.Sprintf("%s[%d]", fp, i)
				var fq transform.FQLDefinedProperty
				if im := l.mapping(ip, item); im != nil {
					l.fields(ip, im, fqlPropertyFields, func(key string, v *yaml.Node) {
						s, _ := l.str(join(ip, key), v)
						if key == "fql" {
							fq.FQL = s
						} else {
							fq.PropertyName = s
						}
					})
				}
				t.FQLDefinedProperties = append(t.FQLDefinedProperties, fq)
			}
		}
	})
	if t.Enabled == nil {
		on := true
		t.Enabled = &on
	}
	return t
}

// filters decodes the filters of a destination.
func (l *loader) filters(path string, n *yaml.Node) []transform.Filter {
	out := []transform.Filter{}
	for i, item := range l.list(path, n) {
		ip := fmt.Sprintf("%s[%d]", path, i)
		var f transform.Filter
		if m := l.mapping(ip, item); m != nil {
			l.fields(ip, m, filterFields, func(key string, v *yaml.Node) {
				kp := join(ip, key)
				switch key {
				case "id":
					f.ID, _ = l.str(kp, v)
				case "if":
					f.If, _ = l.str(kp, v)
				case "title":
					f.Title, _ = l.str(kp, v)
				case "description":
					f.Description, _ = l.str(kp, v)
				case "enabled":
					if b, ok := l.boolean(kp, v); ok {
						f.Enabled = &b
					}
				case "actions":
					for j, an := range l.list(kp, v) {
						f.Actions = append(f.Actions, l.action(fmt.Sprintf("%s[%d]", kp, j), an))
					}
				}
			})
		}
		out = append(out, f)
	}
	return out
}

// action decodes one action of a filter.
func (l *loader) action(path string, n *yaml.Node) transform.Action {
	var a transform.Action
	m := l.mapping(path, n)
	if m == nil {
		return a
	}
	l.fields(path, m, actionFields, func(key string, v *yaml.Node) {
		kp := join(path, key)
		switch key {
		case "type":
			s, _ := l.str(kp, v)
			a.Type = transform.ActionType(s)
		case "percent":
			if f, ok := l.number(kp, v); ok {
				a.Percent = &f
			}
		case "path":
			a.Path, _ = l.str(kp, v)
		case "fields":
			a.Fields = l.actionFields(kp, v)
		}
	})
	return a
}

// actionFields decodes the fields of a whitelist or blocklist action, in
// either of the shapes [transform.Fields] describes. Paths are written as
// the transform package writes them: fields["properties"][0].
func (l *loader) actionFields(path string, n *yaml.Node) transform.Fields {
	if isNullNode(resolveAlias(n)) {
		l.nodes[path] = n
		return nil
	}
	m := l.mapping(path, n)
	if m == nil {
		return nil
	}
	out := make(transform.Fields, len(m.Content)/2)
	seen := make(map[string]*yaml.Node, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		obj, ok := l.key(fixedPath(path), k, seen)
		if !ok || !l.spend(v) {
			continue
		}
		op := fmt.Sprintf("%s[%q]", path, obj)
		l.nodes[op] = v
		list := v
		if r := resolveAlias(v); r.Kind == yaml.MappingNode {
			// The Config API's shape: {fields: [...]}.
			list = nil
			before := l.problems()
			l.fields(op, r, []string{"fields"}, func(_ string, fv *yaml.Node) { list = fv })
			if list == nil {
				if l.problems() == before {
					l.errorf(v, op, "want a list of field names, or {fields: [...]}")
				}
				continue
			}
		}
		if r := resolveAlias(list); r.Kind != yaml.SequenceNode && !isNullNode(r) {
			l.errorf(list, op, "want a list of field names, or {fields: [...]}")
			continue
		}
		names := []string{}
		for j, item := range l.list(op, list) {
			s, _ := l.str(fmt.Sprintf("%s[%d]", op, j), item)
			names = append(names, s)
		}
		l.nodes[op] = v
		out[obj] = names
	}
	return out
}

// strings decodes a list of strings.
func (l *loader) strings(path string, n *yaml.Node) []string {
	var out []string
	for i, item := range l.list(path, n) {
		s, _ := l.str(fmt.Sprintf("%s[%d]", path, i), item)
		out = append(out, s)
	}
	return out
}

// number decodes a number; an environment reference must expand to one.
// It reports false for null and for a wrong kind, which it reports.
func (l *loader) number(path string, n *yaml.Node) (float64, bool) {
	l.nodes[path] = n
	r := resolveAlias(n)
	switch {
	case isNullNode(r):
		return 0, false
	case r.Kind == yaml.ScalarNode && (r.Tag == "!!int" || r.Tag == "!!float"):
		f, ok := l.scalar(&valuePath{key: path, index: -1}, r).(float64)
		return f, ok
	case r.Kind == yaml.ScalarNode && r.Tag == "!!str" && strings.Contains(r.Value, "$"):
		s, ok := l.expand(fixedPath(path), n, r.Value)
		if !ok {
			return 0, false
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, true
		}
	}
	l.errorf(n, path, "must be a number")
	return 0, false
}
