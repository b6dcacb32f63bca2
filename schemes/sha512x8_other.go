//go:build !amd64 || purego

package schemes

// haveBlock8 is false without the AVX-512 block function: batches are
// verified one by one.
const haveBlock8 = false

func block8(state *[8][8]uint64, w *[16][8]uint64, k *[80][8]uint64) {
	panic("schemes: block8 without AVX-512")
}
