//go:build !linux

package load

import (
	"context"
	"time"
)

// runLoop is Linux's event loop for open-loop runs (loop_linux.go);
// elsewhere runPaced's pacer and reader goroutines do the work.
func runLoop(context.Context, []Conn, *Config, *phase, time.Time) ([]*Worker, bool, error) {
	return nil, false, nil
}
