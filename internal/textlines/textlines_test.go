package textlines

import (
	"fmt"
	"strings"
	"testing"
)

func TestEach(t *testing.T) {
	long := strings.Repeat("x", 11)
	data := "a\r\n\nb\n" + long + "\nc\n" + long + "x" // no final newline
	var got []string
	var skipped []int
	Each([]byte(data), 11, func(no int, line string) { got = append(got, fmt.Sprintf("%d:%s", no, line)) },
		func(no int) { skipped = append(skipped, no) })
	want := "1:a 2: 3:b 4:" + long + " 5:c"
	if strings.Join(got, " ") != want {
		t.Errorf("lines %q, want %q", strings.Join(got, " "), want)
	}
	if fmt.Sprint(skipped) != "[6]" {
		t.Errorf("too long: %v, want [6]", skipped)
	}
	Each(nil, 10, func(int, string) { t.Error("line in empty data") }, func(int) { t.Error("long line in empty data") })
}
