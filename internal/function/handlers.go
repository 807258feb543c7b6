package function

import "fmt"

// findHandlers runs the top-level code once in a fresh interpreter and
// records which handlers it defines, refusing code that does not define
// what its kind needs.
func (p *Program) findHandlers() error {
	vm := newVM(nil)
	defer vm.close()
	if err := vm.load(p); err != nil {
		return fmt.Errorf("running the top-level code: %w", err)
	}
	names := []string{"onRequest", "onBatch"}
	for _, h := range eventHandlers {
		names = append(names, h)
	}
	for _, n := range names {
		if vm.handler(n) != nil {
			p.handlers[n] = true
		}
	}
	switch p.spec.Kind {
	case KindSource:
		if !p.handlers["onRequest"] {
			return fmt.Errorf("a source function must define onRequest(request, settings)")
		}
	default:
		if len(p.handlers) == 0 || (len(p.handlers) == 1 && p.handlers["onRequest"]) {
			article := "a"
			if p.spec.Kind == KindInsert {
				article = "an"
			}
			return fmt.Errorf("%s %s function must define at least one of onTrack, onIdentify, onPage, onScreen, onGroup, onAlias, onDelete or onBatch", article, p.spec.Kind)
		}
	}
	return nil
}
