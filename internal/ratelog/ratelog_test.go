package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOneLineASecond(t *testing.T) {
	now := time.Unix(1000, 0)
	r := &Limiter{now: func() time.Time { return now }}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	for range 5 {
		r.Log(log, slog.LevelWarn, "busy")
	}
	now = now.Add(999 * time.Millisecond)
	r.Log(log, slog.LevelWarn, "busy")
	if got := strings.Count(buf.String(), "msg=busy"); got != 1 {
		t.Fatalf("%d lines within one second, want 1:\n%s", got, buf.String())
	}
	now = now.Add(time.Millisecond)
	r.Log(log, slog.LevelWarn, "busy", "k", "v")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "k=v suppressed=5") {
		t.Fatalf("after a second: %q, want a second line counting the 5 held back", lines)
	}
	if strings.Contains(lines[0], "suppressed") {
		t.Errorf("the first line counts suppressed lines: %q", lines[0])
	}
}

func TestConcurrent(t *testing.T) {
	fixed := time.Unix(1000, 0)
	r := &Limiter{now: func() time.Time { return fixed }}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, ok := r.Allow(); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d of 800 calls allowed", allowed)
	}
}
