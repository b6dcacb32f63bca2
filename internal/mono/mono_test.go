package mono

import (
	"testing"
	"time"
)

// TestNowAdvances: Now never goes back, and Since measures a sleep.
func TestNowAdvances(t *testing.T) {
	a := Now()
	time.Sleep(20 * time.Millisecond)
	if d := Since(a); d < 20*time.Millisecond || d > 10*time.Second {
		t.Fatalf("Since after a 20 ms sleep: %v", d)
	}
	if b := Now(); b < a {
		t.Fatalf("Now went back: %v after %v", b, a)
	}
}

// BenchmarkNow against time.Now and time.Since: the clock reads saved.
func BenchmarkNow(b *testing.B) {
	for b.Loop() {
		_ = Since(Now())
	}
}

func BenchmarkTimeNowSince(b *testing.B) {
	for b.Loop() {
		_ = time.Since(time.Now())
	}
}
