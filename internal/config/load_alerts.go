package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file decodes what the config file says about alert rules, and
// checks them with the rest of the file.

// The keys of an alert rule and of its notify block.
var (
	alertFields  = []string{"id", "name", "destination", "source", "enabled", "kind", "threshold", "window", "min_events", "notify"}
	notifyFields = []string{"url", "headers"}
)

// alert decodes one entry of alerts. A field whose YAML has a problem is
// marked undecoded, so that [Alert.Validate] does not report its zero
// value too.
func (l *loader) alert(path string, n *yaml.Node) Alert {
	a := Alert{Origin: OriginFile, Enabled: true}
	m := l.mapping(path, n)
	if m == nil {
		l.markUndecoded(path)
		return a
	}
	hasThreshold := false
	l.fields(path, m, alertFields, func(key string, v *yaml.Node) {
		p := join(path, key)
		l.decoded(p, func() {
			switch key {
			case "id":
				a.ID, _ = l.str(p, v)
			case "name":
				a.Name, _ = l.str(p, v)
			case "destination":
				a.Destination, _ = l.str(p, v)
			case "source":
				a.Source, _ = l.str(p, v)
			case "enabled":
				if b, ok := l.boolean(p, v); ok {
					a.Enabled = b
				}
			case "kind":
				s, _ := l.str(p, v)
				a.Kind = AlertKind(s)
			case "threshold":
				a.Threshold, hasThreshold = l.number(p, v)
			case "window":
				if d, ok := l.duration(p, v, "5m or 1h"); ok {
					a.Window = Duration(d)
				}
			case "min_events":
				if i, ok := l.integer(p, v); ok {
					a.MinEvents = int64(i)
				}
			case "notify":
				a.Notify = l.notify(p, v)
			}
		})
	})
	if !hasThreshold && !l.undecoded[join(path, "threshold")] {
		l.at(join(path, "threshold"), "required: %s", thresholdHelp(a.Kind))
		l.markUndecoded(join(path, "threshold"))
	}
	a.normalize()
	return a
}

// thresholdHelp says what a rule of kind k takes as its threshold.
func thresholdHelp(k AlertKind) string {
	switch k {
	case SuccessRateBelow:
		return "the lowest acceptable success rate, a fraction such as 0.95"
	case DiscardsAbove:
		return "the most discarded events acceptable over the window, such as 100"
	case DiscardsChange:
		return "the increase in discards, in percent, that fires, such as 200"
	}
	return "a success rate (success_rate_below), a count (discards_above) or a percentage (discards_change)"
}

// notify decodes the notify block of an alert.
func (l *loader) notify(path string, n *yaml.Node) AlertNotify {
	var out AlertNotify
	m := l.mapping(path, n)
	if m == nil {
		return out
	}
	l.fields(path, m, notifyFields, func(key string, v *yaml.Node) {
		p := join(path, key)
		switch key {
		case "url":
			out.URL, _ = l.str(p, v)
		case "headers":
			if isNullNode(resolveAlias(v)) {
				l.nodes[p] = v
				return
			}
			hm := l.mapping(p, v)
			if hm == nil {
				return
			}
			out.Headers = make(map[string]string, len(hm.Content)/2)
			seen := make(map[string]*yaml.Node, len(hm.Content)/2)
			for i := 0; i+1 < len(hm.Content); i += 2 {
				k, hv := hm.Content[i], hm.Content[i+1]
				name, ok := l.key(fixedPath(p), k, seen)
				if !ok || !l.spend(hv) {
					continue
				}
				hp := join(p, name)
				l.decoded(hp, func() {
					s, ok := l.str(hp, hv)
					if !ok && isNullNode(resolveAlias(hv)) {
						l.errorf(hv, hp, "must be a string")
					}
					out.Headers[name] = s
				})
			}
		}
	})
	return out
}

// markUndecoded remembers path as undecoded; see [loader.decoded].
func (l *loader) markUndecoded(path string) {
	if l.undecoded == nil {
		l.undecoded = make(map[string]bool)
	}
	l.undecoded[path] = true
}

// undecodedAt reports whether path or one of its ancestors is undecoded.
func (l *loader) undecodedAt(path string) bool {
	for {
		if l.undecoded[path] {
			return true
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return false
		}
		path = path[:i]
	}
}

// checkAlerts validates the decoded alerts: each on its own, duplicate
// ids, and their destination and source among those the file declares.
func (l *loader) checkAlerts(cfg *Config, sourceIDs, destIDs map[string]int) {
	ids := make(map[string]int)
	for i := range cfg.Alerts {
		a := &cfg.Alerts[i]
		prefix := fmt.Sprintf("alerts[%d]", i)
		for _, fe := range a.Validate(prefix) {
			if !l.undecodedAt(fe.Path) {
				l.attach(fe)
			}
		}
		if ValidateID(a.ID) == "" {
			if j, dup := ids[a.ID]; dup {
				l.at(prefix+".id", "duplicate alert id %q (first declared at line %d)", a.ID, l.line(fmt.Sprintf("alerts[%d].id", j)))
			} else {
				ids[a.ID] = i
			}
		}
		if _, ok := destIDs[a.Destination]; !ok && a.Destination != "" && ValidateID(a.Destination) == "" {
			l.at(prefix+".destination", "destination %q is not declared in destinations", a.Destination)
		}
		if _, ok := sourceIDs[a.Source]; !ok && a.Source != "" && ValidateID(a.Source) == "" {
			l.at(prefix+".source", "source %q is not declared in sources", a.Source)
		}
	}
}
