package schemes

import "context"

// shaCryptMatches is shaCryptVerify under the default limits, for tests
// that only need the verdict (every value they use is within the limits).
func shaCryptMatches(stored string, pw []byte) bool {
	ok, err := shaCryptVerify(call{ctx: context.Background(), v: defaultVerifier}, stored, pw)
	return ok && err == nil
}
