package detect

// sepByte stands for a run of separators (anything that is not part of a
// word) in patterns and in the scanned stream. It never occurs in UTF-8.
const sepByte = 0xFF

// automaton is an Aho-Corasick matcher compiled to a full transition table
// over byte classes: one table look-up per byte of text, whatever the number
// of patterns. Bytes that occur in no pattern share class 0.
type automaton struct {
	class  [256]uint8
	nclass int32
	// delta[s*nclass+c] is the state after reading a byte of class c in
	// state s.
	delta []int32
	// outHead[s] is the first entry of state s's output chain in outs, or
	// -1; the chain goes on through the outputs of s's failure state.
	outHead []int32
	outs    []outEntry
	lens    []int32
}

type outEntry struct {
	pattern int32
	next    int32
}

// newAutomaton compiles patterns (byte strings, sepByte for separators).
// Pattern i is reported as id i; empty patterns are never reported.
func newAutomaton(patterns [][]byte) *automaton {
	a := &automaton{lens: make([]int32, len(patterns))}
	var used [256]bool
	for _, p := range patterns {
		for _, b := range p {
			used[b] = true
		}
	}
	// UTF-8 never uses 0xC0, 0xC1 or 0xF5..0xFE, so with sepByte at most
	// 244 byte values occur and every class fits a uint8.
	a.nclass = 1
	for b := range used {
		if used[b] {
			a.class[b] = uint8(a.nclass)
			a.nclass++
		}
	}
	nc := a.nclass
	newState := func() int32 {
		s := int32(len(a.delta)) / nc
		for range nc {
			a.delta = append(a.delta, -1)
		}
		a.outHead = append(a.outHead, -1)
		return s
	}
	newState()
	for id, p := range patterns {
		a.lens[id] = int32(len(p))
		if len(p) == 0 {
			continue
		}
		s := int32(0)
		for _, b := range p {
			c := int32(a.class[b])
			next := a.delta[s*nc+c]
			if next < 0 {
				next = newState()
				a.delta[s*nc+c] = next
			}
			s = next
		}
		a.outs = append(a.outs, outEntry{pattern: int32(id), next: a.outHead[s]})
		a.outHead[s] = int32(len(a.outs) - 1)
	}

	// Breadth-first: fill the missing transitions from the failure state
	// and append the failure state's outputs to each chain. A state's
	// failure state is shallower, so it is complete when the state is seen.
	fail := make([]int32, len(a.outHead))
	queue := make([]int32, 0, len(a.outHead))
	for c := int32(0); c < nc; c++ {
		next := a.delta[c]
		if next < 0 {
			a.delta[c] = 0
			continue
		}
		fail[next] = 0
		queue = append(queue, next)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := fail[s]
		// Chain s's own outputs onto its failure state's.
		if h := a.outHead[s]; h >= 0 {
			last := h
			for a.outs[last].next >= 0 {
				last = a.outs[last].next
			}
			a.outs[last].next = a.outHead[f]
		} else {
			a.outHead[s] = a.outHead[f]
		}
		for c := int32(0); c < nc; c++ {
			next := a.delta[s*nc+c]
			if next < 0 {
				a.delta[s*nc+c] = a.delta[f*nc+c]
				continue
			}
			fail[next] = a.delta[f*nc+c]
			queue = append(queue, next)
		}
	}
	return a
}

// states returns the number of states, for memory estimates in tests.
func (a *automaton) states() int { return len(a.outHead) }
