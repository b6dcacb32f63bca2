package load

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations with a bounded relative error, in constant
// memory, so that a long run at 200k requests/s needs no per-sample
// storage. Values below 256 ns are kept exactly; above, each power of two
// is split into 128 equal buckets, so a reported percentile is at most
// 1/128 (0.8 %) above the true sample (it reports the bucket's upper bound,
// capped at the maximum seen). Values above 2^40 ns (18 minutes) share the
// last bucket.
//
// A Histogram is not safe for concurrent use: each worker records into its
// own and the results are merged with Merge.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // ns; float so that sums of hours of samples cannot overflow
	min    uint64
	max    uint64
}

const (
	histExact   = 256 // values below are their own bucket
	histSubBits = 7   // 128 buckets per power of two above histExact
	histSub     = 1 << histSubBits
	histMaxBits = 40 // values ≥ 2^40 ns go to the last bucket
	// Octaves 2^8..2^9, …, 2^39..2^40: 32 of them.
	histBuckets = histExact + (histMaxBits-8)*histSub
)

// bucketOf maps a value in ns to its bucket.
func bucketOf(v uint64) int {
	if v < histExact {
		return int(v)
	}
	if v >= 1<<histMaxBits {
		return histBuckets - 1
	}
	n := bits.Len64(v) // 9..40
	shift := n - 8     // 1..32
	m := v >> shift    // 128..255
	return histExact + (shift-1)*histSub + int(m-histSub)
}

// bucketUpper is the largest value that maps to bucket i.
func bucketUpper(i int) uint64 {
	if i < histExact {
		return uint64(i)
	}
	i -= histExact
	shift := i/histSub + 1
	m := uint64(i%histSub + histSub)
	return (m+1)<<shift - 1
}

// Record adds one sample; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest sample, exactly.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the exact arithmetic mean.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.n)))
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100): the
// smallest recorded value such that at least p % of the samples are less
// than or equal to it, rounded up to its bucket's upper bound and capped at
// Max. It returns 0 for an empty histogram; p ≤ 0 gives Min, p ≥ 100 Max.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if p <= 0 {
		return time.Duration(h.min)
	}
	if p >= 100 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}
