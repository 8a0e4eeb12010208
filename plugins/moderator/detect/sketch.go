package detect

import (
	"math/bits"

	"crier/plugins/moderator/normalize"
)

// sketch summarises a message for near-duplicate checks: the set of its
// character bigrams in a 512-bit set, a hash of the whole, and its length.
// It is built from the word characters of the matching copy, so spacing,
// punctuation, invisible characters, look-alikes and stretched letters make
// no difference.
type sketch struct {
	bits [8]uint64
	hash uint64
	n    int
	pop  int // bits set
}

func newSketch(t *normalize.Text) sketch {
	var s sketch
	h := uint64(14695981039346656037)
	prev := rune(-1)
	for i := 0; i < t.Len(); i++ {
		if !t.IsWordChar(i) {
			continue
		}
		r := t.Rune(i)
		s.n++
		if prev >= 0 {
			x := uint64(uint32(prev))*0x9E3779B97F4A7C15 ^ uint64(uint32(r))*0xC2B2AE3D27D4EB4F
			x ^= x >> 29
			b := x % 512
			s.bits[b/64] |= 1 << (b % 64)
		}
		prev = r
		h = (h ^ uint64(uint32(r))) * 1099511628211
	}
	s.hash = h
	for _, w := range s.bits {
		s.pop += bits.OnesCount64(w)
	}
	return s
}

// similarity returns the Jaccard index of the two bigram sets, 1 for equal
// texts.
func (s *sketch) similarity(o *sketch) float64 {
	if s.hash == o.hash && s.n == o.n {
		return 1
	}
	inter, union := 0, 0
	for i := range s.bits {
		inter += bits.OnesCount64(s.bits[i] & o.bits[i])
		union += bits.OnesCount64(s.bits[i] | o.bits[i])
	}
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}

// similar reports near-duplicates: equal texts, or texts both at least
// minLen characters long whose bigram sets overlap by threshold or more.
func (s *sketch) similar(o *sketch, threshold float64, minLen int) bool {
	if s.hash == o.hash && s.n == o.n {
		return true
	}
	if s.n < minLen || o.n < minLen {
		return false
	}
	// Very different lengths cannot be near-duplicates, and the Jaccard
	// index is at most the ratio of the two set sizes.
	if s.n*2 < o.n || o.n*2 < s.n {
		return false
	}
	if lo, hi := min(s.pop, o.pop), max(s.pop, o.pop); float64(lo) < threshold*float64(hi) {
		return false
	}
	return s.similarity(o) >= threshold
}
