package redisstream

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that closing a destination stops every goroutine of its
// connection pool.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
