package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Fields are the fields a whitelist_fields or blocklist_fields action
// keeps or removes, by the object that holds them: "properties", "traits",
// "context", a dotted path inside one of them ("properties.products"), or
// "" for the top level. Each object's list names fields in it; an entry
// may be dotted to reach deeper ("address.street").
//
// It decodes, from JSON or YAML, both the Config API's shape,
//
//	{"properties": {"fields": ["email"]}, "context": {"fields": ["ip"]}}
//
// and the Public API's shorter one, {"properties": ["email"]}; it encodes
// as the first.
type Fields map[string][]string

// fieldList is the Config API's form of one object's list.
type fieldList struct {
	Fields []string `json:"fields" yaml:"fields"`
}

// MarshalJSON encodes f as {"object": {"fields": [...]}}.
func (f Fields) MarshalJSON() ([]byte, error) {
	if f == nil {
		return []byte("null"), nil
	}
	m := make(map[string]fieldList, len(f))
	for k, l := range f {
		m[k] = fieldList{Fields: nonNil(l)}
	}
	return json.Marshal(m)
}

// UnmarshalJSON decodes either shape described at [Fields].
func (f *Fields) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("fields: %w", err)
	}
	out := make(Fields, len(raw))
	for k, v := range raw {
		list, err := decodeJSONList(v)
		if err != nil {
			return fmt.Errorf("fields %q: %w", k, err)
		}
		out[k] = list
	}
	*f = out
	return nil
}

func decodeJSONList(b json.RawMessage) ([]string, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var l []string
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, err
		}
		return nonNil(l), nil
	}
	var fl fieldList
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&fl); err != nil || fl.Fields == nil {
		return nil, errors.New(`want a list of field names, or {"fields": [...]}`)
	}
	return fl.Fields, nil
}

// MarshalYAML encodes f as {object: {fields: [...]}}.
func (f Fields) MarshalYAML() (any, error) {
	if f == nil {
		return nil, nil
	}
	m := make(map[string]fieldList, len(f))
	for k, l := range f {
		m[k] = fieldList{Fields: nonNil(l)}
	}
	return m, nil
}

// UnmarshalYAML decodes either shape described at [Fields]. Its errors
// give the line and column of the offending node.
func (f *Fields) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return nodeErr(n, "fields: want a mapping from objects (properties, traits, context) to lists of fields")
	}
	out := make(Fields, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		var key string
		if kn.Kind != yaml.ScalarNode || kn.Decode(&key) != nil {
			return nodeErr(kn, "fields: want an object name as key")
		}
		if _, dup := out[key]; dup {
			return nodeErr(kn, fmt.Sprintf("fields: %q appears twice", key))
		}
		list, err := decodeYAMLList(vn, key)
		if err != nil {
			return err
		}
		out[key] = list
	}
	*f = out
	return nil
}

func decodeYAMLList(n *yaml.Node, key string) ([]string, error) {
	if n.Kind == yaml.MappingNode {
		if len(n.Content) != 2 || n.Content[0].Value != "fields" {
			return nil, nodeErr(n, fmt.Sprintf("fields %q: want a list of field names, or {fields: [...]}", key))
		}
		n = resolve(n.Content[1])
	}
	if n.Kind != yaml.SequenceNode {
		return nil, nodeErr(n, fmt.Sprintf("fields %q: want a list of field names", key))
	}
	l := make([]string, 0, len(n.Content))
	for _, e := range n.Content {
		e = resolve(e)
		var s string
		if e.Kind != yaml.ScalarNode || e.Decode(&s) != nil {
			return nil, nodeErr(e, fmt.Sprintf("fields %q: want a field name", key))
		}
		l = append(l, s)
	}
	return l, nil
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func nodeErr(n *yaml.Node, msg string) error {
	return fmt.Errorf("line %d, column %d: %s", n.Line, n.Column, msg)
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// sortedKeys returns the objects of f in order, so that compiling and its
// errors do not depend on map order.
func sortedKeys(f Fields) []string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
