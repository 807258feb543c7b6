// Package testenv decides what a test does when a service it needs — a
// database, a broker, a tool on PATH — is missing: skip with a message
// saying how to provide it, or, when CONFLUX_REQUIRE_SERVICES=1 (as in
// CI), fail, so that a green run never hides a test that did not run.
package testenv

import (
	"os"
	"testing"
)

// RequireServicesEnv names the environment variable that, set to "1",
// turns a missing service into a test failure.
const RequireServicesEnv = "CONFLUX_REQUIRE_SERVICES"

// Unavailable skips t, or fails it under CONFLUX_REQUIRE_SERVICES=1, with
// msg, which should name the service, where it was looked for, and how to
// point the test elsewhere.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequireServicesEnv) == "1" {
		t.Fatal(msg + "; failing because " + RequireServicesEnv + "=1")
	}
	t.Skip(msg + "; set " + RequireServicesEnv + "=1 to fail instead of skipping")
}

// Getenv returns the environment variable's value, or def when unset or empty.
func Getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
