// Package destinations lists Conflux's built-in destination types. Adding
// one is a package beside this file that exports a deliver.Type, and a
// line in Builtin.
package destinations

import (
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/amplitude"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/functiondest"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/mixpanel"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/natsdest"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/redisstream"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
	"github.com/confluxcdp/conflux/internal/deliver/warehouse/postgres"
)

// Builtin returns a registry of every built-in destination type;
// destination functions run on fn (its zero value checks their settings
// only).
func Builtin(fn functiondest.Runtime) *deliver.Registry {
	return deliver.NewRegistry(
		functiondest.NewType(fn),
		webhook.Type,
		amplitude.Type,
		mixpanel.Type,
		natsdest.Type,
		redisstream.Type,
		postgres.Type,
	)
}
