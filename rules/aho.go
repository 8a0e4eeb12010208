package rules

import "sort"

// automaton is an Aho-Corasick matcher over bytes: one pass over a text
// finds every occurrence of every pattern, whatever the number of patterns.
//
// The root's transitions are a dense table (every search step that falls
// back to the root lands there); deeper states keep sorted sparse edges,
// which keeps thousands of patterns small in memory.
type automaton struct {
	root   [256]int32
	states []acState
	lens   []int // pattern id -> length in bytes
}

type acState struct {
	edges []acEdge // sorted by byte
	fail  int32
	out   []int32 // ids of the patterns ending here, including by suffix
}

type acEdge struct {
	b    byte
	next int32
}

// newAutomaton builds the matcher; pattern i is reported as id i. Empty
// patterns are never reported.
func newAutomaton(patterns []string) *automaton {
	a := &automaton{states: []acState{{}}, lens: make([]int, len(patterns))}
	for id, p := range patterns {
		a.lens[id] = len(p)
		if p == "" {
			continue
		}
		s := int32(0)
		for i := 0; i < len(p); i++ {
			next := a.child(s, p[i])
			if next < 0 {
				next = int32(len(a.states))
				a.states = append(a.states, acState{})
				st := &a.states[s]
				j := sort.Search(len(st.edges), func(k int) bool { return st.edges[k].b >= p[i] })
				st.edges = append(st.edges, acEdge{})
				copy(st.edges[j+1:], st.edges[j:])
				st.edges[j] = acEdge{b: p[i], next: next}
			}
			s = next
		}
		a.states[s].out = append(a.states[s].out, int32(id))
	}
	// Breadth-first, so that a state's failure link is final before its
	// children need it.
	queue := make([]int32, 0, len(a.states))
	for c := 0; c < 256; c++ {
		if n := a.child(0, byte(c)); n >= 0 {
			a.root[c] = n
			a.states[n].fail = 0
			queue = append(queue, n)
		}
	}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, e := range a.states[u].edges {
			v := e.next
			f := a.step(a.states[u].fail, e.b)
			a.states[v].fail = f
			if out := a.states[f].out; len(out) > 0 {
				a.states[v].out = append(a.states[v].out, out...)
			}
			queue = append(queue, v)
		}
	}
	return a
}

// child returns the direct child of s on b, or -1.
func (a *automaton) child(s int32, b byte) int32 {
	edges := a.states[s].edges
	lo, hi := 0, len(edges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch {
		case edges[m].b < b:
			lo = m + 1
		case edges[m].b > b:
			hi = m
		default:
			return edges[m].next
		}
	}
	return -1
}

// step follows the goto function with failure links.
func (a *automaton) step(s int32, b byte) int32 {
	for s != 0 {
		if n := a.child(s, b); n >= 0 {
			return n
		}
		s = a.states[s].fail
	}
	return a.root[b]
}

// empty reports whether the automaton has no pattern.
func (a *automaton) empty() bool { return a == nil || len(a.states) == 1 }

// scan calls fn for every occurrence of a pattern in text, with the
// pattern's id and the byte offsets of the occurrence.
func (a *automaton) scan(text string, fn func(id int32, start, end int)) {
	if a.empty() {
		return
	}
	s := int32(0)
	for i := 0; i < len(text); i++ {
		s = a.step(s, text[i])
		for _, id := range a.states[s].out {
			end := i + 1
			fn(id, end-a.lens[id], end)
		}
	}
}
