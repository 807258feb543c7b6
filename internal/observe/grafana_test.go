package observe_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// dashboardPath is the Grafana dashboard shipped for GET /metrics.
const dashboardPath = "../../docs/grafana/conflux.json"

// metricInfo is what the dashboard may use of one exported metric.
type metricInfo struct {
	kind   string // Counter, Gauge, Histogram, Summary, …
	labels []string
	file   string // where it is defined; "" for the Go and process collectors
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// exportedMetrics returns every metric Conflux's GET /metrics can show:
// the Conflux collectors, found by parsing every non-test Go file under
// root for prometheus.New…(prometheus.…Opts{Name: "…"}, []string{…})
// calls, and the Go and process collectors the server registers.
func exportedMetrics(t *testing.T, root string) map[string]metricInfo {
	t.Helper()
	out := make(map[string]metricInfo)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(src), "prometheus.New") {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || len(call.Args) == 0 || !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			name := ""
			for _, e := range opts.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
						if lit, ok := kv.Value.(*ast.BasicLit); ok {
							name, _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			if name == "" {
				return true
			}
			info := metricInfo{kind: strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(sel.Sel.Name, "New"), "Vec"), "Func"), file: path}
			if len(call.Args) > 1 {
				if labels, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, e := range labels.Elts {
						if lit, ok := e.(*ast.BasicLit); ok {
							l, _ := strconv.Unquote(lit.Value)
							info.labels = append(info.labels, l)
						}
					}
				}
			}
			if prev, dup := out[name]; dup {
				t.Errorf("metric %s is defined twice: %s and %s", name, prev.file, path)
			}
			out[name] = info
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatalf("reading the metric definitions under %s: %v", root, err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering the Go and process collectors: %v", err)
	}
	for _, mf := range families {
		info := metricInfo{kind: map[string]string{"HISTOGRAM": "Histogram", "SUMMARY": "Summary"}[mf.GetType().String()]}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !slices.Contains(info.labels, lp.GetName()) {
					info.labels = append(info.labels, lp.GetName())
				}
			}
		}
		out[mf.GetName()] = info
	}
	return out
}

// series resolves a name used in PromQL to the metric it reads: a
// histogram's _bucket, _sum and _count series, a summary's _sum and _count,
// or any metric itself (not a histogram's or summary's bare name, which
// has no samples).
func series(metrics map[string]metricInfo, name string) (base string, info metricInfo, ok bool) {
	if info, ok := metrics[name]; ok && info.kind != "Histogram" && info.kind != "Summary" {
		return name, info, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		b, found := strings.CutSuffix(name, suffix)
		if !found {
			continue
		}
		if info, ok := metrics[b]; ok && (info.kind == "Histogram" || info.kind == "Summary" && suffix != "_bucket") {
			return b, info, true
		}
	}
	return "", metricInfo{}, false
}

var (
	metricName = regexp.MustCompile(`\b(?:conflux|go|process)_[a-z0-9_]+\b`)
	matchers   = regexp.MustCompile(`\{([^{}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	grouping   = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// checkExpr reports what is wrong with one PromQL expression: unbalanced
// brackets or quotes, a metric GET /metrics does not export, a label none
// of its metrics has, a histogram_quantile without le; and it adds the
// metrics it reads to used.
func checkExpr(where, expr string, metrics map[string]metricInfo, used map[string]bool) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, where+": "+fmt.Sprintf(format, args...)) }
	var stack []rune
	inQuote := false
	for _, c := range expr {
		switch {
		case inQuote:
			inQuote = c != '"'
		case c == '"':
			inQuote = true
		case c == '(' || c == '{' || c == '[':
			stack = append(stack, c)
		case c == ')' || c == '}' || c == ']':
			open := map[rune]rune{')': '(', '}': '{', ']': '['}[c]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				bad("unbalanced %q in %s", c, expr)
				return errs
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inQuote || len(stack) > 0 {
		bad("unclosed brackets or quotes in %s", expr)
	}

	labels := slices.Clone(targetLabels)
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		bad("no Conflux, Go or process metric in %s", expr)
	}
	buckets := false
	for _, name := range names {
		base, info, ok := series(metrics, name)
		if !ok {
			bad("%s is not a metric GET /metrics exports", name)
			continue
		}
		used[base] = true
		labels = append(labels, info.labels...)
		if strings.HasSuffix(name, "_bucket") {
			buckets = true
			labels = append(labels, "le")
		}
	}
	var named []string
	for _, m := range matchers.FindAllStringSubmatch(expr, -1) {
		for _, l := range matcher.FindAllStringSubmatch(m[1], -1) {
			named = append(named, l[1])
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				named = append(named, l)
			}
		}
	}
	for _, l := range named {
		if !slices.Contains(labels, l) {
			bad("label %q is not a label of %s", l, strings.Join(names, ", "))
		}
	}
	if strings.Contains(expr, "histogram_quantile") {
		if !buckets {
			bad("histogram_quantile without a _bucket series: %s", expr)
		}
		le := false
		for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
			le = le || slices.Contains(strings.Split(strings.ReplaceAll(g[1], " ", ""), ","), "le")
		}
		if !le {
			bad("histogram_quantile must aggregate by le: %s", expr)
		}
	}
	return errs
}

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	Inputs        []input `json:"__inputs"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource *datasource     `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type input struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

const dsInput = "${DS_PROMETHEUS}"

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// checkDashboard reports everything wrong with a dashboard, and which
// exported metrics its panels read.
func checkDashboard(raw []byte, metrics map[string]metricInfo) (errs []string, used map[string]bool) {
	used = make(map[string]bool)
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return []string{"not valid JSON: " + err.Error()}, used
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if d.SchemaVersion < 36 {
		bad("schemaVersion %d, want at least 36", d.SchemaVersion)
	}
	if !slices.ContainsFunc(d.Inputs, func(in input) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	}) {
		bad("no DS_PROMETHEUS datasource input for prometheus in __inputs")
	}
	checkDS := func(where string, ds *datasource) {
		if ds == nil || ds.Type != "prometheus" || ds.UID != dsInput {
			bad("%s: datasource %+v, want {prometheus %s}", where, ds, dsInput)
		}
	}
	vars := make(map[string]bool)
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		checkDS("variable "+v.Name, v.Datasource)
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct{ Query string }
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				bad("variable %s: query %s is neither a string nor {query}", v.Name, v.Query)
				continue
			}
			q = obj.Query
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			bad("variable %s: query %q, want label_values(metric, label)", v.Name, q)
			continue
		}
		errs = append(errs, checkExpr("variable "+v.Name, "sum by ("+m[2]+") ("+m[1]+")", metrics, map[string]bool{})...)
	}
	if !vars["destination"] {
		bad("no destination template variable")
	}

	ids := make(map[int]string)
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if prev, dup := ids[p.ID]; dup || p.ID == 0 {
				bad("%s: id %d missing or also used by %q", where, p.ID, prev)
			}
			ids[p.ID] = p.Title
			if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				bad("%s: gridPos %+v", where, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			checkDS(where, p.Datasource)
			if len(p.Targets) == 0 {
				bad("%s: no targets", where)
			}
			refs := make(map[string]bool)
			for _, tg := range p.Targets {
				if refs[tg.RefID] || tg.RefID == "" {
					bad("%s: refId %q missing or repeated", where, tg.RefID)
				}
				refs[tg.RefID] = true
				checkDS(where+" target "+tg.RefID, tg.Datasource)
				for _, v := range regexp.MustCompile(`\$(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
					if !vars[v[1]] && !strings.HasPrefix(v[1], "__") {
						bad("%s target %s: unknown variable $%s", where, tg.RefID, v[1])
					}
				}
				errs = append(errs, checkExpr(where+" target "+tg.RefID, tg.Expr, metrics, used)...)
			}
		}
	}
	walk(d.Panels)
	return errs, used
}

// TestGrafanaDashboard checks docs/grafana/conflux.json against the
// metrics Conflux exports: it is a valid dashboard with a Prometheus
// datasource input and a destination variable, every query reads metrics
// and labels that exist, and every metric of the delivery engine is on a
// panel.
func TestGrafanaDashboard(t *testing.T) {
	metrics := exportedMetrics(t, "..")
	var delivery []string
	for name, info := range metrics {
		if strings.HasSuffix(filepath.ToSlash(info.file), "deliver/metrics.go") {
			delivery = append(delivery, name)
		}
	}
	slices.Sort(delivery)
	// Guard the parser: if it stopped finding the definitions the
	// coverage check below would pass on nothing.
	for _, name := range []string{"conflux_deliver_events_total", "conflux_deliver_latency_seconds", "conflux_ingest_request_duration_seconds", "conflux_log_appends_total", "conflux_process_lag_messages"} {
		if _, ok := metrics[name]; !ok {
			t.Fatalf("%s not found among the metric definitions under internal/ (found %d)", name, len(metrics))
		}
	}
	if len(delivery) < 9 {
		t.Fatalf("found %d delivery-engine metrics (%v), want at least the 9 of internal/deliver/metrics.go", len(delivery), delivery)
	}
	if got := metrics["conflux_deliver_attempts_total"].labels; !slices.Equal(got, []string{"destination", "result", "reason"}) {
		t.Fatalf("conflux_deliver_attempts_total labels %v, want [destination result reason]", got)
	}

	t.Run("shipped", func(t *testing.T) {
		raw, err := os.ReadFile(dashboardPath)
		if err != nil {
			t.Fatal(err)
		}
		errs, used := checkDashboard(raw, metrics)
		for _, e := range errs {
			t.Error(e)
		}
		for _, name := range delivery {
			if !used[name] {
				t.Errorf("%s (internal/deliver/metrics.go) is on no panel of %s", name, dashboardPath)
			}
		}
		var unused []string
		for name, info := range metrics {
			if info.file != "" && !used[name] {
				unused = append(unused, name)
			}
		}
		slices.Sort(unused)
		if len(unused) > 0 {
			t.Logf("Conflux metrics on no panel: %v", unused)
		}
	})

	// The checks must catch what they are for.
	t.Run("catches", func(t *testing.T) {
		ds := `{"type": "prometheus", "uid": "${DS_PROMETHEUS}"}`
		doc := func(schema int, variable, expr string) []byte {
			return fmt.Appendf(nil, `{"schemaVersion": %d,
 "__inputs": [{"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}],
 "templating": {"list": [{"name": "destination", "type": "query", "datasource": %s, "query": {"query": %q}}]},
 "panels": [{"id": 1, "type": "timeseries", "title": "p", "datasource": %s, "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
   "targets": [{"refId": "A", "datasource": %s, "expr": %q}]}]}`, schema, ds, variable, ds, ds, expr)
		}
		okVar := "label_values(conflux_deliver_events_total, destination)"
		tests := []struct {
			name, want string
			raw        []byte
		}{
			{"not JSON", "not valid JSON", []byte(`{"panels": [`)},
			{"old schema", "schemaVersion 30", doc(30, okVar, `rate(conflux_deliver_events_total[5m])`)},
			{"unknown metric", "conflux_deliver_event_total is not a metric", doc(39, okVar, `rate(conflux_deliver_event_total[5m])`)},
			{"histogram bare name", "conflux_deliver_latency_seconds is not a metric", doc(39, okVar, `rate(conflux_deliver_latency_seconds[5m])`)},
			{"counter _bucket", "conflux_deliver_events_total_bucket is not a metric", doc(39, okVar, `rate(conflux_deliver_events_total_bucket[5m])`)},
			{"unknown label", `label "status"`, doc(39, okVar, `sum by (status) (rate(conflux_deliver_attempts_total[5m]))`)},
			{"unknown matcher label", `label "dest"`, doc(39, okVar, `rate(conflux_deliver_events_total{dest="a"}[5m])`)},
			{"quantile without le", "must aggregate by le", doc(39, okVar, `histogram_quantile(0.99, sum by (destination) (rate(conflux_deliver_latency_seconds_bucket[5m])))`)},
			{"unbalanced", "unbalanced", doc(39, okVar, `sum(rate(conflux_deliver_events_total[5m])))`)},
			{"unknown variable", "unknown variable $dest", doc(39, okVar, `rate(conflux_deliver_events_total{destination=~"$dest"}[5m])`)},
			{"variable on a missing metric", "variable destination", doc(39, "label_values(conflux_deliveries_total, destination)", `rate(conflux_deliver_events_total[5m])`)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				errs, _ := checkDashboard(tt.raw, metrics)
				if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.want) }) {
					t.Errorf("errors %q, want one containing %q", errs, tt.want)
				}
			})
		}
		t.Run("valid", func(t *testing.T) {
			errs, used := checkDashboard(doc(39, okVar, `histogram_quantile(0.99, sum by (destination, le) (rate(conflux_deliver_latency_seconds_bucket{destination=~"$destination"}[$__rate_interval])))`), metrics)
			if len(errs) > 0 || !used["conflux_deliver_latency_seconds"] {
				t.Errorf("errors %q, used %v; want none and the latency histogram", errs, used)
			}
		})
	})
}
