package engine

// memoryLookups is implemented by passdb and userdb drivers that answer
// from memory (passwd-file, static): looking up in them never waits, so
// the engine does not announce it (internal/blocking) and the caller's
// goroutine need not be freed first. The engine announces every other
// backend call, and every hash that costs more than a comparison.
type memoryLookups interface{ LooksUpInMemory() bool }

// inMemory reports whether db answers from memory.
func inMemory(db any) bool {
	m, ok := db.(memoryLookups)
	return ok && m.LooksUpInMemory()
}
