package fql_test

import (
	"testing"

	"github.com/confluxcdp/conflux/internal/fql"
)

func benchMatch(b *testing.B, expr string) {
	e, err := fql.Compile(expr)
	if err != nil {
		b.Fatal(err)
	}
	ev := decode(b, richEvent)
	want := e.Match(ev)
	b.ReportAllocs()
	for b.Loop() {
		if e.Match(ev) != want {
			b.Fatal("result changed")
		}
	}
}

// BenchmarkMatchTypical is the per-event, per-destination cost of a
// typical destination filter.
func BenchmarkMatchTypical(b *testing.B) { benchMatch(b, typicalFilter) }

// BenchmarkMatchFunctions uses in, contains, match, length and '!'.
func BenchmarkMatchFunctions(b *testing.B) {
	benchMatch(b, `!(event in ['A', 'B', 'Order Completed']) or contains(context.library.name, 'go') and match(properties.email, '*@Example.com') and length(userId) > 0`)
}

// BenchmarkMatchCasing allocates: the casing functions build new strings.
func BenchmarkMatchCasing(b *testing.B) {
	benchMatch(b, `snakecase(event) = 'order_completed' and lowercase(properties.email) = 'jane@example.com'`)
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fql.Compile(typicalFilter); err != nil {
			b.Fatal(err)
		}
	}
}
