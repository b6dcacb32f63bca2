package config

import "strings"

// splitList splits on any of seps and drops empty items.
func splitList(v string, seps string) []string {
	out := strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(seps, r) })
	if len(out) == 0 {
		return nil
	}
	return out
}
