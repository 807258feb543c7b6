package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// MinAdminTokenLen is the shortest admin token a config file may set. The
// token guards the whole Config API, so a short, guessable one is refused.
const MinAdminTokenLen = 16

// maxNodes bounds how many YAML nodes one file may expand to once aliases are
// followed, so that a "billion laughs" file fails fast instead of eating all
// memory. Real config files are a few hundred nodes.
const maxNodes = 100_000

// maxDepth bounds how deeply settings may nest. JSON settings objects are
// shallow; the limit keeps error paths, and the work to build them, small.
const maxDepth = 64

// maxErrors bounds how many problems are reported; past it, they are
// counted and summarized in one line.
const maxErrors = 100

// maxExactInt is the largest integer magnitude a float64 holds exactly (2^53).
const maxExactInt = 1 << 53

// LoadError is every problem found in one config file. [Load] and [Parse]
// report all of them at once so that a user fixes a file in one pass instead
// of one error per run. Match it with errors.AsType[*config.LoadError].
type LoadError struct {
	// Errors are the problems, ordered by position in the file. Each has
	// File set, and Line and Col, except that a YAML syntax error has only
	// the line the parser reports (Col 0), if any.
	Errors []*FieldError
}

// Error renders one problem per line, as "file:line:col: path: message".
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems, so that errors.AsType[*FieldError]
// finds the first of them.
func (e *LoadError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// Load reads the config file at path and parses it with [Parse]. Problems with
// the file's content are a [*LoadError] naming the file by path as given, so
// that editors and terminals can jump to it; failing to read the file is
// returned wrapped, and matches fs.ErrNotExist and friends.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a config file's content; name is the file name
// used in error messages. It exists apart from [Load] so that tests and the
// Config API can check a config that is not on disk.
//
// Decoding is strict: unknown keys, duplicate keys, values of the wrong kind
// and more than one YAML document are errors. Scalar values may refer to the
// environment as ${NAME} or ${NAME:-default} (the default applies when NAME
// is unset or empty); $$ is a literal dollar sign, and $NAME without braces is
// an error rather than a silent literal. Anchors and aliases are allowed;
// merge keys (<<) are not. An empty file is a valid Config that declares
// nothing.
//
// Destination settings become JSON-compatible values: map[string]any, []any,
// string, bool, nil, and float64 for every number, integers included. That is
// what encoding/json produces when it decodes into any, so settings read from
// a file compare equal to the same settings sent to the Config API or read
// back from the state store. An integer that float64 cannot hold exactly
// (beyond ±2^53) is an error; quote it to keep it as a string. A value that
// came from an environment reference is always a string.
//
// Tracking-plan schemas are written as YAML mappings and become JSON the
// same way (canonical: keys sorted); an event whose schema is empty or null
// is planned without constraints. Plans, transformations and destination
// filters are compiled with the libraries that apply them, so a schema or
// an FQL expression that does not compile is an error at its position;
// when the YAML of such a rule already has a problem, it is not compiled
// too.
//
// JavaScript functions are declared in three ways, each compiled with
// [function.Compile] so that code that does not compile, or lacks the
// handlers its kind needs, is an error at its line and column (in the
// config file for inline code written as a literal block (|) or on one
// line; in the code file for code_file):
//   - a source's function block ({code or code_file, settings,
//     allowed_hosts, timeout}) declares the source function
//     "source-<source id>", and its insert_function block the insert
//     function "source-<source id>-insert";
//   - a destination of type function with code or code_file (and
//     allowed_hosts, timeout) at its top level declares the destination
//     function "destination-<destination id>", whose settings are the
//     destination's settings block: the destination's Settings become
//     {"function": "destination-<destination id>"}; its insert_function
//     block declares "destination-<destination id>-insert";
//   - the top-level functions list declares functions with an id, a kind
//     and the same fields, which sources and destinations name by id
//     (function: <id>, insert_function: <id>, or the settings
//     {function: <id>} of a destination of type function).
//
// Exactly one of code and code_file is given; code_file is relative to the
// config file's directory. Code is taken as written, without environment
// references (${…} is JavaScript's); put secrets in settings. A reference
// by id to a function the file does not declare is left to
// [Repo.ApplyFile], which accepts functions created through the Config
// API; one the file declares must be of the kind the reference needs.
//
// Every declared object gets Origin [OriginFile]; a source's, tracking
// plan's or alert's Name defaults to its ID, a destination's and an
// alert's Enabled to true, a transformation's Enabled to true (set
// explicitly), an alert's MinEvents to [DefaultAlertMinEvents] where it
// applies, DedupWindow to [DefaultDedupWindow], and Profiles' SpaceID and
// EventRetention to [DefaultProfileSpace] and [DefaultEventRetention]. The
// identity block is checked by internal/aggregate/identity, each problem
// at its position. On any problem Parse returns a nil Config and a
// [*LoadError] holding all of them.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, os.LookupEnv)
}

// parse is [Parse] with the environment lookup as a parameter, so that tests
// need not change the process environment.
func parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	l := &loader{
		file:      name,
		lookupEnv: lookupEnv,
		nodes:     make(map[string]*yaml.Node),
		budget:    maxNodes,
		lines:     strings.Split(string(data), "\n"),
	}
	cfg := l.decode(data)
	if cfg != nil {
		l.check(cfg)
	}
	if len(l.errs) > 0 {
		return nil, newLoadError(l.file, l.errs, l.dropped)
	}
	cfg.file = name
	cfg.positions = make(map[string]position, len(l.nodes))
	for path, n := range l.nodes {
		cfg.positions[path] = position{line: n.Line, col: n.Column}
	}
	return cfg, nil
}

// newLoadError orders the problems of file by position and, when dropped
// more were left out, says so in a last line.
func newLoadError(file string, errs []*FieldError, dropped int) *LoadError {
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	if dropped > 0 {
		errs = append(errs, &FieldError{File: file, Message: fmt.Sprintf("too many errors: %d more not shown", dropped)})
	}
	return &LoadError{Errors: errs}
}

// loader holds the state of parsing one file.
type loader struct {
	file      string
	lookupEnv func(string) (string, bool)
	errs      []*FieldError
	// nodes maps the path of every value read to its node, to give
	// validation errors found after decoding a position.
	nodes map[string]*yaml.Node
	// budget is how many more nodes may be visited; see maxNodes.
	budget int
	// dropped counts the problems past maxErrors.
	dropped int
	// undecoded holds the paths of rules (a plan's rules, a destination's
	// filters, a transformation) whose YAML had problems: compiling what
	// could be decoded of them would only report follow-on errors.
	undecoded map[string]bool
	// lines are the file's lines, to place problems inside inline code;
	// functions the functions declared so far.
	lines     []string
	functions []*declaredFunction
}

// problems counts the problems recorded so far.
func (l *loader) problems() int { return len(l.errs) + l.dropped }

// decoded calls decode and remembers path as undecoded if it reported a
// problem.
func (l *loader) decoded(path string, decode func()) {
	before := l.problems()
	decode()
	if l.problems() > before {
		if l.undecoded == nil {
			l.undecoded = make(map[string]bool)
		}
		l.undecoded[path] = true
	}
}

// attachCompiled records a problem found by compiling the rules at root,
// unless their YAML already had problems.
func (l *loader) attachCompiled(root string, fe *FieldError) {
	if l.undecoded[root] {
		return
	}
	l.attach(fe)
}

// errorf records a problem at node n (which may be nil for "no position").
func (l *loader) errorf(n *yaml.Node, path, format string, args ...any) {
	fe := &FieldError{Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		fe.Line, fe.Col = n.Line, n.Column
	}
	l.add(fe)
}

// add records a problem, or only counts it once there are maxErrors. A
// problem without a File is in the config file itself.
func (l *loader) add(fe *FieldError) {
	if len(l.errs) >= maxErrors {
		l.dropped++
		return
	}
	fe.File = cmp.Or(fe.File, l.file)
	l.errs = append(l.errs, fe)
}

// syntaxLine extracts the line number from the YAML parser's messages, which
// carry no column.
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError records an error of the YAML parser itself.
func (l *loader) syntaxError(err error) {
	fe := &FieldError{Message: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := syntaxLine.FindStringSubmatch(err.Error()); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		fe.Message = "invalid YAML: " + m[2]
	}
	l.add(fe)
}

// decode parses the YAML and walks it into a Config. It returns nil when the
// file could not be parsed at all.
func (l *loader) decode(data []byte) *Config {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return newConfig() // empty file, or only comments
	} else if err != nil {
		l.syntaxError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.errorf(&extra, "", "more than one YAML document: a config file holds exactly one")
	} else if !errors.Is(err, io.EOF) {
		l.syntaxError(err)
	}

	cfg := newConfig()
	if len(doc.Content) == 0 {
		return cfg
	}
	root := doc.Content[0]
	if isNullNode(root) {
		return cfg
	}
	l.nodes[""] = root
	if root.Kind != yaml.MappingNode {
		l.errorf(root, "", "the top level must be a mapping")
		return cfg
	}
	l.fields("", root, topFields, func(key string, v *yaml.Node) {
		switch key {
		case "admin_token":
			if s, ok := l.str(key, v); ok {
				cfg.AdminToken = Secret(s)
			}
		case "public_url":
			if s, ok := l.str(key, v); ok {
				cfg.PublicURL = s
			}
		case "trusted_proxies":
			for i, item := range l.list(key, v) {
				p := fmt.Sprintf("%s[%d]", key, i)
				if s, ok := l.str(p, item); ok {
					if prefix, ok := l.prefix(p, item, s); ok {
						cfg.TrustedProxies = append(cfg.TrustedProxies, prefix)
					}
				}
			}
		case "sources":
			for i, item := range l.list(key, v) {
				cfg.Sources = append(cfg.Sources, l.source(fmt.Sprintf("%s[%d]", key, i), item))
			}
		case "destinations":
			for i, item := range l.list(key, v) {
				cfg.Destinations = append(cfg.Destinations, l.destination(fmt.Sprintf("%s[%d]", key, i), item))
			}
		case "tracking_plans":
			for i, item := range l.list(key, v) {
				cfg.TrackingPlans = append(cfg.TrackingPlans, l.trackingPlan(fmt.Sprintf("%s[%d]", key, i), item))
			}
		case "transformations":
			for i, item := range l.list(key, v) {
				p := fmt.Sprintf("%s[%d]", key, i)
				l.decoded(p, func() { cfg.Transformations = append(cfg.Transformations, l.transformation(p, item)) })
			}
		case "alerts":
			for i, item := range l.list(key, v) {
				cfg.Alerts = append(cfg.Alerts, l.alert(fmt.Sprintf("%s[%d]", key, i), item))
			}
		case "functions":
			for i, item := range l.list(key, v) {
				l.functionEntry(fmt.Sprintf("%s[%d]", key, i), item)
			}
		case "dedup_window":
			if d, ok := l.dedupWindow(key, v); ok {
				cfg.DedupWindow = d
			}
		case "identity":
			cfg.Identity = l.identity(key, v)
		case "profiles":
			cfg.Profiles = l.profiles(key, v)
		}
	})
	for _, d := range l.functions {
		cfg.Functions = append(cfg.Functions, d.fn)
		cfg.functionPaths = append(cfg.functionPaths, d.path)
	}
	return cfg
}

// The keys each mapping of the file may hold.
var (
	topFields = []string{
		"admin_token", "public_url", "trusted_proxies", "dedup_window",
		"sources", "destinations", "tracking_plans", "transformations", "alerts",
		"functions", "identity", "profiles",
	}
	sourceFields      = []string{"id", "name", "write_key", "tracking_plan", "schema", "function", "insert_function"}
	destinationFields = []string{"id", "name", "type", "enabled", "sources", "settings", "filters", "delivery", "insert_function",
		"code", "code_file", "allowed_hosts", "timeout"}
	deliveryFields = []string{"concurrency", "rate_limit", "max_retry_age", "shards"}
)

// source decodes one entry of sources.
func (l *loader) source(path string, n *yaml.Node) Source {
	src := Source{Origin: OriginFile}
	m := l.mapping(path, n)
	if m == nil {
		return src
	}
	var fn, insertFn *yaml.Node
	l.fields(path, m, sourceFields, func(key string, v *yaml.Node) {
		p := join(path, key)
		switch key {
		case "schema":
			src.Schema = l.schemaBlock(p, v)
			return
		case "function":
			fn = v
			return
		case "insert_function":
			insertFn = v
			return
		}
		s, _ := l.str(p, v)
		switch key {
		case "id":
			src.ID = s
		case "name":
			src.Name = s
		case "write_key":
			src.WriteKey = s
		case "tracking_plan":
			src.TrackingPlan = s
		}
	})
	if src.Name == "" {
		src.Name = src.ID
	}
	if fn != nil {
		src.Function = l.functionRef(join(path, "function"), fn, "source", src.ID, "source-"+src.ID, function.KindSource)
	}
	if insertFn != nil {
		src.InsertFunction = l.functionRef(join(path, "insert_function"), insertFn, "source", src.ID, "source-"+src.ID+"-insert", function.KindInsert)
	}
	return src
}

// destination decodes one entry of destinations.
func (l *loader) destination(path string, n *yaml.Node) Destination {
	dst := Destination{
		Origin:   OriginFile,
		Enabled:  true,
		Sources:  []string{},
		Settings: map[string]any{},
		Filters:  []transform.Filter{},
	}
	m := l.mapping(path, n)
	if m == nil {
		return dst
	}
	// code … timeout declare the function of a destination of type
	// function, once its type is known.
	fnKeys := map[string]*yaml.Node{}
	var insertFn *yaml.Node
	l.fields(path, m, destinationFields, func(key string, v *yaml.Node) {
		p := join(path, key)
		switch key {
		case "code", "code_file", "allowed_hosts", "timeout":
			fnKeys[key] = v
		case "insert_function":
			insertFn = v
		case "id":
			dst.ID, _ = l.str(p, v)
		case "name":
			dst.Name, _ = l.str(p, v)
		case "type":
			dst.Type, _ = l.str(p, v)
		case "enabled":
			if b, ok := l.boolean(p, v); ok {
				dst.Enabled = b
			}
		case "sources":
			for i, item := range l.list(p, v) {
				s, _ := l.str(fmt.Sprintf("%s[%d]", p, i), item)
				dst.Sources = append(dst.Sources, s)
			}
		case "settings":
			if s, ok := l.settings(p, v); ok {
				dst.Settings = s
			}
		case "filters":
			l.decoded(p, func() { dst.Filters = l.filters(p, v) })
		case "delivery":
			dst.Delivery = l.delivery(p, v)
		}
	})
	l.destinationFunction(path, &dst, fnKeys)
	if insertFn != nil {
		dst.InsertFunction = l.functionRef(join(path, "insert_function"), insertFn, "destination", dst.ID, "destination-"+dst.ID+"-insert", function.KindInsert)
	}
	return dst
}

// settings decodes a settings mapping (of a destination or a function);
// null is no settings, reported as false like a mapping with problems.
func (l *loader) settings(path string, v *yaml.Node) (map[string]any, bool) {
	l.nodes[path] = v
	if isNullNode(resolveAlias(v)) {
		return nil, false
	}
	if resolveAlias(v).Kind != yaml.MappingNode {
		l.errorf(v, path, "must be a mapping")
		return nil, false
	}
	s, ok := l.value(&valuePath{key: path, index: -1}, v, nil).(map[string]any)
	// The top-level keys' positions, for the problems that the delivery
	// stage's check finds ([Config.CheckDestinations]); deeper values fall
	// back to these.
	m := resolveAlias(v)
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolveAlias(m.Content[i]); k.Kind == yaml.ScalarNode {
			l.nodes[join(path, k.Value)] = m.Content[i+1]
		}
	}
	return s, ok
}

// delivery decodes the delivery block of a destination; null, like no
// block, takes every default. The ranges are checked by
// [Destination.Validate].
func (l *loader) delivery(path string, n *yaml.Node) DeliveryOptions {
	var o DeliveryOptions
	if isNullNode(resolveAlias(n)) {
		l.nodes[path] = n
		return o
	}
	m := l.mapping(path, n)
	if m == nil {
		return o
	}
	l.fields(path, m, deliveryFields, func(key string, v *yaml.Node) {
		p := join(path, key)
		switch key {
		case "concurrency":
			if i, ok := l.integer(p, v); ok {
				o.Concurrency = i
			}
		case "rate_limit":
			if f, ok := l.number(p, v); ok {
				o.RateLimit = f
			}
		case "max_retry_age":
			if d, ok := l.duration(p, v, "4h or 90m"); ok {
				o.MaxRetryAge = Duration(d)
			}
		case "shards":
			if i, ok := l.integer(p, v); ok {
				o.Shards = i
			}
		}
	})
	return o
}

// fields walks the key/value pairs of mapping m, reporting keys that are not
// strings, duplicate keys and keys not in known, and calls fn for the others.
func (l *loader) fields(path string, m *yaml.Node, known []string, fn func(key string, v *yaml.Node)) {
	seen := make(map[string]*yaml.Node, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key, ok := l.key(fixedPath(path), k, seen)
		if !ok {
			continue
		}
		if !slices.Contains(known, key) {
			l.errorf(k, join(path, key), "%s", unknownField(key, known))
			continue
		}
		if !l.spend(v) {
			return
		}
		fn(key, v)
	}
}

// unknownField is the message for a key that is not one of known, with
// the likely intended key if there is one.
func unknownField(key string, known []string) string {
	if s := suggestKey(key, known); s != "" {
		return "unknown field (did you mean " + s + "?)"
	}
	return "unknown field"
}

// key checks one mapping key: it must be a plain string and must not repeat
// one already in seen (which it is then added to).
func (l *loader) key(path fmt.Stringer, k *yaml.Node, seen map[string]*yaml.Node) (string, bool) {
	r := resolveAlias(k)
	switch {
	case r.Kind == yaml.ScalarNode && r.Tag == "!!merge":
		l.errorf(k, path.String(), "merge keys (<<) are not supported")
		return "", false
	case r.Kind != yaml.ScalarNode || r.Tag != "!!str":
		l.errorf(k, path.String(), "keys must be strings")
		return "", false
	}
	if first, dup := seen[r.Value]; dup {
		l.errorf(k, join(path.String(), r.Value), "duplicate key (first at line %d)", first.Line)
		return "", false
	}
	seen[r.Value] = k
	return r.Value, true
}

// spend takes one node off the budget, reporting (once) when it runs out.
func (l *loader) spend(n *yaml.Node) bool {
	l.budget--
	if l.budget == -1 {
		l.errorf(n, "", "the file expands to more than %d values; check for aliases that repeat each other", maxNodes)
	}
	return l.budget >= 0
}

// mapping returns the mapping at n (following an alias), or reports that n
// is not one and returns nil.
func (l *loader) mapping(path string, n *yaml.Node) *yaml.Node {
	l.nodes[path] = n
	r := resolveAlias(n)
	if r.Kind != yaml.MappingNode {
		l.errorf(n, path, "must be a mapping")
		return nil
	}
	return r
}

// list returns the items of the sequence at n (following an alias); null is
// an empty list, anything else is reported.
func (l *loader) list(path string, n *yaml.Node) []*yaml.Node {
	l.nodes[path] = n
	r := resolveAlias(n)
	switch {
	case isNullNode(r):
		return nil
	case r.Kind != yaml.SequenceNode:
		l.errorf(n, path, "must be a list")
		return nil
	}
	for _, item := range r.Content {
		if !l.spend(item) {
			return nil
		}
	}
	return r.Content
}

// str returns the scalar at n with environment references expanded. It
// reports false for null (an absent optional value) and for a wrong kind,
// which it reports. Any scalar counts, so `id: 123` is the string "123": the
// text as written, not a reformatted number.
func (l *loader) str(path string, n *yaml.Node) (string, bool) {
	l.nodes[path] = n
	r := resolveAlias(n)
	if isNullNode(r) {
		return "", false
	}
	if r.Kind != yaml.ScalarNode || !textTags[r.Tag] {
		l.errorf(n, path, "must be a string")
		return "", false
	}
	if r.Tag != "!!str" {
		return r.Value, true // a number, bool or date: no $ to expand
	}
	return l.expand(fixedPath(path), n, r.Value)
}

// duration returns the Go duration at n, such as 4h or 1h30m; example is
// shown when it is not one. It reports false for null and for a wrong
// kind, as [loader.str] does. Ranges are the caller's to check.
func (l *loader) duration(path string, n *yaml.Node, example string) (time.Duration, bool) {
	s, ok := l.str(path, n)
	if !ok {
		return 0, false
	}
	d, err := parseDuration(s, example)
	if err != nil {
		l.errorf(n, path, "%s", err.Error())
		return 0, false
	}
	return d, true
}

// integer returns the whole number at n, as [loader.number] returns a
// number.
func (l *loader) integer(path string, n *yaml.Node) (int, bool) {
	f, ok := l.number(path, n)
	if !ok {
		return 0, false
	}
	if f != math.Trunc(f) || math.Abs(f) > maxExactInt {
		l.errorf(n, path, "must be a whole number")
		return 0, false
	}
	return int(f), true
}

// textTags are the scalar tags whose text is accepted where a string is due.
var textTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!timestamp": true, "!!merge": true,
}

// boolean returns the bool at n; null reports false to keep the default. An
// environment reference must expand to true or false.
func (l *loader) boolean(path string, n *yaml.Node) (bool, bool) {
	l.nodes[path] = n
	r := resolveAlias(n)
	if isNullNode(r) {
		return false, false
	}
	s := r.Value
	if r.Kind == yaml.ScalarNode && r.Tag == "!!str" && strings.Contains(s, "$") {
		var ok bool
		if s, ok = l.expand(fixedPath(path), n, s); !ok {
			return false, false
		}
	} else if r.Kind != yaml.ScalarNode || r.Tag != "!!bool" {
		l.errorf(n, path, "must be true or false")
		return false, false
	}
	switch s {
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	l.errorf(n, path, "must be true or false")
	return false, false
}

// valuePath is the path of a settings value as a chain of segments, turned
// into a string only for an error message: through aliases, a short file can
// have many values with long paths.
type valuePath struct {
	parent *valuePath
	key    string // the mapping key, or the whole path of the root
	index  int    // the sequence index, or -1 for a mapping entry or the root
}

// String renders the path, e.g. "destinations[0].settings.headers[2]".
func (p *valuePath) String() string {
	switch {
	case p.parent == nil:
		return p.key
	case p.index >= 0:
		return fmt.Sprintf("%s[%d]", p.parent, p.index)
	}
	return join(p.parent.String(), p.key)
}

// fixedPath is a path known up front.
type fixedPath string

// String returns the path.
func (p fixedPath) String() string { return string(p) }

// value converts a settings node to a JSON-compatible value; see [Parse].
// active holds the mappings and sequences n is nested in, to catch an alias
// to one of them, which would expand forever; its length is n's depth. On
// error it reports and returns nil.
func (l *loader) value(path *valuePath, n *yaml.Node, active []*yaml.Node) any {
	if n.Kind == yaml.AliasNode {
		if slices.Contains(active, n.Alias) {
			l.errorf(n, path.String(), "alias *%s refers to a value that contains it", n.Value)
			return nil
		}
		return l.value(path, n.Alias, active)
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		if n.Tag != "!!map" && n.Tag != "!!seq" {
			l.errorf(n, path.String(), "unsupported tag %s", n.Tag)
			return nil
		}
		if len(active) >= maxDepth {
			l.errorf(n, path.String(), "nested more than %d levels deep", maxDepth)
			return nil
		}
		active = append(active, n)
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		seen := make(map[string]*yaml.Node, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !l.spend(v) {
				return nil
			}
			if key, ok := l.key(path, k, seen); ok {
				m[key] = l.value(&valuePath{parent: path, key: key, index: -1}, v, active)
			}
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			if !l.spend(item) {
				return nil
			}
			s = append(s, l.value(&valuePath{parent: path, index: i}, item, active))
		}
		return s
	case yaml.ScalarNode:
		return l.scalar(path, n)
	}
	l.errorf(n, path.String(), "unexpected YAML node")
	return nil
}

// scalar converts one settings scalar; see [Parse] for the types.
func (l *loader) scalar(path *valuePath, n *yaml.Node) any {
	switch n.Tag {
	case "!!null":
		return nil
	case "!!str":
		s, _ := l.expand(path, n, n.Value)
		return s
	case "!!timestamp", "!!merge":
		return n.Value // JSON has no dates: keep the text
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			l.errorf(n, path.String(), "invalid !!bool value")
		}
		return b
	case "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			l.errorf(n, path.String(), "invalid %s value", n.Tag)
			return nil
		}
		var f float64
		exact := true
		if i, ok := v.(int); ok {
			v = int64(i)
		}
		switch v := v.(type) {
		case int64:
			f, exact = float64(v), v >= -maxExactInt && v <= maxExactInt
		case uint64:
			f, exact = float64(v), v <= maxExactInt
		case float64:
			f = v
			// yaml resolves an integer too big for int64 as a float.
			exact = !intLiteral.MatchString(n.Value) || math.Abs(f) <= maxExactInt
		default:
			l.errorf(n, path.String(), "invalid %s value", n.Tag)
			return nil
		}
		switch {
		case math.IsInf(f, 0) || math.IsNaN(f):
			l.errorf(n, path.String(), "%s is not a JSON number", n.Value)
			return nil
		case !exact:
			l.errorf(n, path.String(), "integer %s is too large to keep exactly (limit 2^53); quote it to make it a string", n.Value)
			return nil
		}
		return f
	}
	l.errorf(n, path.String(), "unsupported tag %s", n.Tag)
	return nil
}

// intLiteral matches a YAML integer written in decimal, with optional
// underscores as yaml.v3 accepts them.
var intLiteral = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)

// expand replaces ${NAME} and ${NAME:-default} in s from the environment and
// $$ with $. It reports every bad or unset reference at n and returns false if
// there was any. The default is taken literally, up to the first '}'.
func (l *loader) expand(path fmt.Stringer, n *yaml.Node, s string) (string, bool) {
	if !strings.Contains(s, "$") {
		return s, true
	}
	var b strings.Builder
	ok := true
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$$"):
			b.WriteByte('$')
			s = s[2:]
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				l.errorf(n, path.String(), "unterminated ${ reference; write $$ for a literal dollar sign")
				return "", false
			}
			ref := s[2:end]
			s = s[end+1:]
			name, def, hasDef := strings.Cut(ref, ":-")
			if name == "" || envName.FindString(name) != name {
				l.errorf(n, path.String(), "invalid reference ${%s}: use ${NAME} or ${NAME:-default}", ref)
				ok = false
				continue
			}
			v, set := l.lookupEnv(name)
			switch {
			case hasDef && v == "":
				v = def
			case !set:
				l.errorf(n, path.String(), "environment variable %s is not set (give a default with ${%s:-default})", name, name)
				ok = false
			}
			b.WriteString(v)
		default:
			if m := envName.FindString(s[1:]); m != "" {
				l.errorf(n, path.String(), "$%s is not expanded: write ${%s}, or $$ for a literal dollar sign", m, m)
				ok = false
			}
			b.WriteByte('$')
			s = s[1:]
		}
	}
	if !ok {
		return "", false
	}
	return b.String(), true
}

// envName matches an environment variable name, as shells accept it, at the
// start of a string.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// prefix parses one trusted proxy: a CIDR prefix, or a single address that
// stands for a /32 (IPv4) or /128 (IPv6) prefix.
func (l *loader) prefix(path string, n *yaml.Node, s string) (netip.Prefix, bool) {
	if strings.Contains(s, "%") {
		l.errorf(n, path, "%q: IPv6 zones are not allowed", s)
		return netip.Prefix{}, false
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	l.errorf(n, path, "%q is not an IP address or CIDR prefix (like 10.0.0.0/8)", s)
	return netip.Prefix{}, false
}

// check validates the decoded config and applies what depends on more than
// one field.
func (l *loader) check(cfg *Config) {
	if msg := tokenProblem(cfg.AdminToken.Value()); msg != "" {
		l.at("admin_token", "%s", msg)
	}
	if cfg.PublicURL != "" {
		if u, msg := checkPublicURL(cfg.PublicURL); msg != "" {
			l.at("public_url", "%s", msg)
		} else {
			cfg.PublicURL = u
		}
	}

	sourceIDs := make(map[string]int)
	writeKeys := make(map[string]int)
	for i := range cfg.Sources {
		src := &cfg.Sources[i]
		prefix := fmt.Sprintf("sources[%d]", i)
		for _, fe := range src.Validate(prefix) {
			l.attach(fe)
		}
		if ValidateID(src.ID) == "" {
			if j, dup := sourceIDs[src.ID]; dup {
				l.at(prefix+".id", "duplicate source id %q (first declared at line %d)", src.ID, l.line(fmt.Sprintf("sources[%d].id", j)))
			} else {
				sourceIDs[src.ID] = i
			}
		}
		if src.WriteKey != "" {
			if j, dup := writeKeys[src.WriteKey]; dup {
				l.at(prefix+".write_key", "same write key as sources[%d] (line %d): each source needs its own", j, l.line(fmt.Sprintf("sources[%d].write_key", j)))
			} else {
				writeKeys[src.WriteKey] = i
			}
		}
	}

	destIDs := make(map[string]int)
	for i := range cfg.Destinations {
		dst := &cfg.Destinations[i]
		prefix := fmt.Sprintf("destinations[%d]", i)
		for _, fe := range dst.Validate(prefix) {
			if filters := prefix + ".filters"; under(fe.Path, filters) {
				l.attachCompiled(filters, fe)
				continue
			}
			l.attach(fe)
		}
		if ValidateID(dst.ID) == "" {
			if j, dup := destIDs[dst.ID]; dup {
				l.at(prefix+".id", "duplicate destination id %q (first declared at line %d)", dst.ID, l.line(fmt.Sprintf("destinations[%d].id", j)))
			} else {
				destIDs[dst.ID] = i
			}
		}
		for j, ref := range dst.Sources {
			if _, ok := sourceIDs[ref]; !ok && ValidateID(ref) == "" {
				l.at(fmt.Sprintf("%s.sources[%d]", prefix, j), "source %q is not declared in sources", ref)
			}
		}
	}

	planIDs := make(map[string]int)
	for i := range cfg.TrackingPlans {
		p := &cfg.TrackingPlans[i]
		prefix := fmt.Sprintf("tracking_plans[%d]", i)
		for _, fe := range p.Validate(prefix) {
			if rules := prefix + ".rules"; under(fe.Path, rules) {
				l.attachCompiled(rules, fe)
				continue
			}
			l.attach(fe)
		}
		if ValidateID(p.ID) == "" {
			if j, dup := planIDs[p.ID]; dup {
				l.at(prefix+".id", "duplicate tracking plan id %q (first declared at line %d)", p.ID, l.line(fmt.Sprintf("tracking_plans[%d].id", j)))
			} else {
				planIDs[p.ID] = i
			}
		}
	}
	for i := range cfg.Sources {
		src := &cfg.Sources[i]
		prefix := fmt.Sprintf("sources[%d]", i)
		if ref := src.TrackingPlan; ref != "" && ValidateID(ref) == "" {
			if _, ok := planIDs[ref]; !ok {
				l.at(prefix+".tracking_plan", "tracking plan %q is not declared in tracking_plans", ref)
			}
		}
		for _, f := range []struct{ key, ref string }{
			{"forward_violations_to", src.Schema.ForwardViolationsTo},
			{"forward_blocked_to", src.Schema.ForwardBlockedTo},
		} {
			if f.ref != "" && f.ref != src.ID && ValidateID(f.ref) == "" {
				if _, ok := sourceIDs[f.ref]; !ok {
					l.at(prefix+".schema."+f.key, "source %q is not declared in sources", f.ref)
				}
			}
		}
	}

	transformationIDs := make(map[string]int)
	for i := range cfg.Transformations {
		t := &cfg.Transformations[i]
		prefix := fmt.Sprintf("transformations[%d]", i)
		for _, fe := range t.Validate(prefix) {
			switch fe.Path {
			case prefix + ".id", prefix + ".name", prefix + ".source", prefix + ".destination":
				l.attach(fe)
			default: // from transform.Compile
				l.attachCompiled(prefix, fe)
			}
		}
		if ValidateID(t.ID) == "" {
			if j, dup := transformationIDs[t.ID]; dup {
				l.at(prefix+".id", "duplicate transformation id %q (first declared at line %d)", t.ID, l.line(fmt.Sprintf("transformations[%d].id", j)))
			} else {
				transformationIDs[t.ID] = i
			}
		}
		if _, ok := sourceIDs[t.Source]; !ok && ValidateID(t.Source) == "" {
			l.at(prefix+".source", "source %q is not declared in sources", t.Source)
		}
		if _, ok := destIDs[t.Destination]; !ok && t.Destination != "" && ValidateID(t.Destination) == "" {
			l.at(prefix+".destination", "destination %q is not declared in destinations", t.Destination)
		}
	}
	l.checkAlerts(cfg, sourceIDs, destIDs)
	l.checkFunctions(cfg)
}

// under reports whether path is root or a path inside it.
func under(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+".") || strings.HasPrefix(path, root+"[")
}

// checkPublicURL returns the normalized URL, or what is wrong with it.
func checkPublicURL(s string) (string, string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", "not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "must be an absolute http or https URL, like https://collect.example.com"
	case u.Host == "" || u.Opaque != "":
		return "", "must include a host, like https://collect.example.com"
	case u.User != nil:
		return "", "must not contain a user name or password"
	case strings.ContainsAny(s, "?#"):
		return "", "must not have a query or fragment"
	}
	return strings.TrimRight(s, "/"), ""
}

// at records a problem at the node recorded for path; see [loader.attach].
func (l *loader) at(path, format string, args ...any) {
	l.attach(&FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// attach records a validation problem, positioned at the node recorded for
// its path or, when that value was absent, at the nearest enclosing one.
func (l *loader) attach(fe *FieldError) {
	if n := l.node(fe.Path); n != nil {
		fe.Line, fe.Col = n.Line, n.Column
	}
	l.add(fe)
}

// node returns the node recorded for path or its nearest ancestor.
func (l *loader) node(path string) *yaml.Node {
	n, _ := nearest(l.nodes, path)
	return n
}

// nearest returns the value m holds for path or, failing that, for its
// nearest ancestor ("a.b[2]" → "a.b" → "a" → "").
func nearest[V any](m map[string]V, path string) (V, bool) {
	for {
		if v, ok := m[path]; ok {
			return v, true
		}
		if path == "" {
			var zero V
			return zero, false
		}
		path = path[:max(strings.LastIndexAny(path, ".["), 0)]
	}
}

// line returns the line of the node recorded for path, for "first at" hints.
func (l *loader) line(path string) int {
	if n := l.node(path); n != nil {
		return n.Line
	}
	return 0
}

// resolveAlias follows aliases to the node they name.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNullNode reports whether n is a null scalar: ~, null or nothing at all.
func isNullNode(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// suggestKey returns the entry of known closest to key, if it is close enough
// to be a likely typo, or "".
func suggestKey(key string, known []string) string {
	best, bestDist := "", 3 // suggest at most two edits away
	lower := strings.ToLower(key)
	for _, k := range known {
		if d := editDistance(lower, k); d < bestDist && d*2 <= len(k) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
