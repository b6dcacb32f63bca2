//go:build amd64 && !purego

package schemes

import "golang.org/x/sys/cpu"

//go:generate go run gen_sha512x8.go

// block8 runs the SHA-512 block function on eight messages at once:
// state[j][l] is word j of lane l's state, w[t][l] word t of its block,
// k[t][l] the round constant K[t] in every lane. It needs AVX-512F.
//
//go:noescape
func block8(state *[8][8]uint64, w *[16][8]uint64, k *[80][8]uint64)

// haveBlock8 reports whether this CPU runs block8.
var haveBlock8 = cpu.X86.HasAVX512F
