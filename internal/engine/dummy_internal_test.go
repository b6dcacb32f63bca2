package engine

import (
	"fmt"
	"testing"
)

// The dummy is of the shape a passdb verifies most, not the scheme's
// default cost, and the memory of shapes stays bounded.
func TestDummyShape(t *testing.T) {
	var d dummies
	if _, _, ok := d.pick(); ok {
		t.Fatal("a passdb that verified nothing has a dummy")
	}
	d.note("BLF-CRYPT cost=12", "BLF-CRYPT", "$2y$12$a")
	d.note("BLF-CRYPT cost=10", "BLF-CRYPT", "$2y$10$a")
	d.note("BLF-CRYPT cost=12", "BLF-CRYPT", "$2y$12$b")
	if s, data, ok := d.pick(); !ok || s != "BLF-CRYPT" || data != "$2y$12$b" {
		t.Fatalf("pick = %q %q %v; want the most common shape's latest value", s, data, ok)
	}
	for i := 0; i < 3*maxShapes; i++ {
		d.note(fmt.Sprintf("SHA-CRYPT rounds=%d", 5000+i), "SHA512-CRYPT", "x")
	}
	if len(d.shapes) > maxShapes {
		t.Fatalf("%d shapes remembered, bound %d", len(d.shapes), maxShapes)
	}
	if _, data, _ := d.pick(); data != "$2y$12$b" {
		t.Fatalf("one-off shapes displaced the common one: %q", data)
	}
}
