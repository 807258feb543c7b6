package config

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/confluxcdp/conflux/internal/function"
)

// This file decodes what the config file says about JavaScript functions:
// the top-level functions list, and the functions that sources and
// destinations declare inline (function, insert_function, and the code of
// a destination of type function). See [Parse].

// The keys of a function's block, and of an entry of functions.
var (
	functionBlockFields = []string{"code", "code_file", "settings", "allowed_hosts", "timeout"}
	functionEntryFields = append([]string{"id", "name", "kind"}, functionBlockFields...)
)

// declaredFunction is a function the file declares, with where.
type declaredFunction struct {
	fn Function
	// path is the path of the block that declares it: "functions[2]",
	// "sources[0].function", or "destinations[1]" for the function of a
	// destination of type function.
	path string
	// code is the node of inline code; codeFile the path of the code file
	// (relative to the working directory) and codeFileNode its node.
	code         *yaml.Node
	codeFile     string
	codeFileNode *yaml.Node
	// broken reports that the block's YAML had problems, so that its code
	// is not compiled too.
	broken bool
}

// functionEntry decodes one entry of functions.
func (l *loader) functionEntry(path string, n *yaml.Node) {
	d := &declaredFunction{path: path}
	m := l.mapping(path, n)
	if m == nil {
		return
	}
	keys := map[string]*yaml.Node{}
	before := l.problems()
	l.fields(path, m, functionEntryFields, func(key string, v *yaml.Node) {
		p := join(path, key)
		switch key {
		case "id":
			d.fn.ID, _ = l.str(p, v)
		case "name":
			d.fn.Name, _ = l.str(p, v)
		case "kind":
			s, _ := l.str(p, v)
			d.fn.Kind = function.Kind(s)
		default:
			keys[key] = v
		}
	})
	l.functionBody(path, n, keys, d)
	d.broken = l.problems() > before
	l.functions = append(l.functions, d)
}

// functionRef decodes the function or insert_function field of a source or
// destination (owner, with ownerID): a string is the id of a function
// declared elsewhere (in functions, or through the Config API); a mapping
// declares a function of kind with the id given, which is returned.
func (l *loader) functionRef(path string, n *yaml.Node, owner, ownerID, id string, kind function.Kind) string {
	switch r := resolveAlias(n); r.Kind {
	case yaml.ScalarNode:
		s, _ := l.str(path, n)
		return s
	case yaml.MappingNode:
	default:
		l.nodes[path] = n
		l.errorf(n, path, "must be the id of a function, or a mapping declaring one (code or code_file, settings, allowed_hosts, timeout)")
		return ""
	}
	m := l.mapping(path, n)
	d := &declaredFunction{path: path, fn: Function{ID: id, Kind: kind}}
	keys := map[string]*yaml.Node{}
	before := l.problems()
	l.fields(path, m, functionBlockFields, func(key string, v *yaml.Node) { keys[key] = v })
	l.functionBody(path, n, keys, d)
	d.broken = l.problems() > before
	if !l.declare(d, owner, ownerID) {
		return ""
	}
	return id
}

// destinationFunction declares the function of a destination of type
// function from its code or code_file, allowed_hosts and timeout (keys)
// and its settings, which become the function's: the destination's
// settings then name the function. Those keys on a destination of another
// type are problems.
func (l *loader) destinationFunction(path string, dst *Destination, keys map[string]*yaml.Node) {
	if len(keys) == 0 {
		return
	}
	if dst.Type != FunctionDestinationType {
		for key, v := range keys {
			l.errorf(v, join(path, key), "only a destination of type %s has %s", FunctionDestinationType, key)
		}
		return
	}
	if keys["code"] == nil && keys["code_file"] == nil {
		for key, v := range keys {
			l.errorf(v, join(path, key), "%s belongs to the function declared here with code or code_file; a function declared elsewhere has its own", key)
		}
		return
	}
	id := "destination-" + dst.ID
	// batch_size is the delivery engine's (how many events an onBatch
	// call gets), not the function's: it stays on the destination.
	fnSettings := maps.Clone(dst.Settings)
	batch, hasBatch := fnSettings["batch_size"]
	delete(fnSettings, "batch_size")
	d := &declaredFunction{path: path, fn: Function{ID: id, Kind: function.KindDestination, Settings: fnSettings}}
	before := l.problems()
	l.functionBody(path, l.nodes[path], keys, d)
	d.broken = l.problems() > before
	// Problems with the function setting (the delivery stage's too) point
	// at the code.
	dst.Settings = map[string]any{"function": id}
	if hasBatch {
		dst.Settings["batch_size"] = batch
	}
	l.nodes[join(join(path, "settings"), "function")] = cmp.Or(keys["code"], keys["code_file"])
	l.declare(d, "destination", dst.ID)
}

// declare adds d, declared inline by owner ownerID, to the file's
// functions, unless its id (made from ownerID) is not valid: the owner's
// id is then reported already, or too long for the function's, which is
// reported here.
func (l *loader) declare(d *declaredFunction, owner, ownerID string) bool {
	if ValidateID(ownerID) != "" {
		return false
	}
	if m := ValidateID(d.fn.ID); m != "" {
		l.at(d.path, "the function's id %q, made from the %s id, is not valid (at most 63 characters): shorten the %s id", d.fn.ID, owner, owner)
		return false
	}
	l.functions = append(l.functions, d)
	return true
}

// functionBody decodes the code or code_file, settings, allowed_hosts and
// timeout of d's block (node n, at path) from keys.
func (l *loader) functionBody(path string, n *yaml.Node, keys map[string]*yaml.Node, d *declaredFunction) {
	if v := keys["code"]; v != nil {
		p := join(path, "code")
		l.nodes[p] = v
		// Taken as written: ${…} in JavaScript is a template literal, not
		// an environment reference.
		if r := resolveAlias(v); r.Kind == yaml.ScalarNode && textTags[r.Tag] {
			d.fn.Code, d.code = r.Value, v
		} else {
			l.errorf(v, p, "must be a string")
		}
	}
	if v := keys["code_file"]; v != nil {
		p := join(path, "code_file")
		switch name, ok := l.str(p, v); {
		case keys["code"] != nil:
			l.errorf(v, p, "give code or code_file, not both")
		case !ok || name == "":
			l.errorf(v, p, "must be the path of a JavaScript file")
		default:
			if !filepath.IsAbs(name) {
				name = filepath.Join(filepath.Dir(l.file), name)
			}
			data, err := os.ReadFile(name)
			if err != nil {
				l.errorf(v, p, "reading the code: %v", err)
				break
			}
			d.fn.Code, d.codeFile, d.codeFileNode = string(data), name, v
		}
	}
	if keys["code"] == nil && keys["code_file"] == nil {
		l.errorf(n, path, "code or code_file is required")
	}
	if v := keys["settings"]; v != nil {
		if s, ok := l.settings(join(path, "settings"), v); ok {
			d.fn.Settings = s
		}
	}
	if v := keys["allowed_hosts"]; v != nil {
		d.fn.AllowedHosts = l.strings(join(path, "allowed_hosts"), v)
	}
	if v := keys["timeout"]; v != nil {
		if t, ok := l.duration(join(path, "timeout"), v, "5s or 1500ms"); ok {
			d.fn.Timeout = Duration(t)
		}
	}
	if d.fn.Settings == nil {
		d.fn.Settings = map[string]any{}
	}
	if d.fn.AllowedHosts == nil {
		d.fn.AllowedHosts = []string{}
	}
	d.fn.Origin = OriginFile
}

// checkFunctions validates the declared functions, compiling each: a
// problem in the code points at its line and column in the config file
// (inline code written as a literal block, |, or on one line) or in the
// code file. It also checks the kind of each function that a source or
// destination uses, when the file declares it; one it does not declare
// may have been created through the Config API, which ApplyFile checks.
func (l *loader) checkFunctions(cfg *Config) {
	first := make(map[string]string)
	kinds := make(map[string]function.Kind)
	for i, d := range l.functions {
		fn := &cfg.Functions[i]
		for _, fe := range fn.Validate(d.path) {
			if fe.Path == join(d.path, "code") {
				if !d.broken {
					l.codeProblem(d, fe)
				}
				continue
			}
			l.attach(fe)
		}
		if ValidateID(fn.ID) != "" {
			continue
		}
		if p, dup := first[fn.ID]; dup {
			l.at(join(d.path, "id"), "duplicate function id %q (first declared at line %d, %s)", fn.ID, l.line(p), p)
			continue
		}
		first[fn.ID] = d.path
		kinds[fn.ID] = fn.Kind
	}
	var refs []functionRef
	for i := range cfg.Sources {
		refs = append(refs, cfg.Sources[i].functionRefs(fmt.Sprintf("sources[%d]", i))...)
	}
	for i := range cfg.Destinations {
		refs = append(refs, cfg.Destinations[i].functionRefs(fmt.Sprintf("destinations[%d]", i))...)
	}
	for _, ref := range refs {
		if kind, ok := kinds[ref.id]; ok && kind != ref.kind {
			l.at(ref.path, "%s", wrongKind(ref.id, kind, ref.kind))
		}
	}
}

// codeProblem records fe, a problem [function.Compile] found in d's code,
// at its place in the code when the message names one ("<id>: Line 3:5"
// or "<id>:3:5"), else at the code's node.
func (l *loader) codeProblem(d *declaredFunction, fe *FieldError) {
	line, col := 0, 0
	if m := regexp.MustCompile(regexp.QuoteMeta(d.fn.ID) + `:(?: Line )?(\d+):(\d+)`).FindStringSubmatch(fe.Message); m != nil {
		line, _ = strconv.Atoi(m[1])
		col, _ = strconv.Atoi(m[2])
	}
	if d.codeFile != "" {
		fe.Path = join(d.path, "code_file")
		if line == 0 {
			l.attach(fe)
			return
		}
		fe.File, fe.Line, fe.Col = d.codeFile, line, col
		l.add(fe)
		return
	}
	n := d.code
	switch {
	case line == 0 || n == nil:
		l.attach(fe)
		return
	case n.Style&yaml.LiteralStyle != 0:
		// The code's first line is the one after the | indicator; its
		// indentation is that of the first line that is not blank.
		indent := 0
		for _, s := range l.lines[min(n.Line, len(l.lines)):] {
			if strings.TrimSpace(s) != "" {
				indent = len(s) - len(strings.TrimLeft(s, " "))
				break
			}
		}
		fe.Line, fe.Col = n.Line+line, indent+col
	case line == 1 && !strings.Contains(n.Value, "\n") && n.Style&(yaml.FoldedStyle) == 0:
		fe.Line, fe.Col = n.Line, n.Column+col-1
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			fe.Col++ // the opening quote
		}
	default:
		fe.Line, fe.Col = n.Line, n.Column
	}
	l.add(fe)
}
