package load_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// goroutine has an owner that stops it (docs/architecture.md, house rule 9).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
