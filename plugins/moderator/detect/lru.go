package detect

import "time"

// stateKey names the state of one sender in one room (sender "" for the
// room's own state).
type stateKey struct{ room, sender string }

// lru keeps per-key state with bounded memory: at most max entries, the
// least recently used evicted first, and entries idle longer than the
// detector's window dropped as they come up. It is not safe for concurrent
// use; each detector guards its own with a mutex.
type lru[V any] struct {
	max        int
	m          map[stateKey]*lruNode[V]
	head, tail *lruNode[V] // head is the most recently used
	// free keeps a few evicted nodes, with their values' buffers, for the
	// next new keys: senders come and go all the time.
	free  *lruNode[V]
	nfree int
}

// maxFree bounds the evicted nodes kept for reuse.
const maxFree = 64

type lruNode[V any] struct {
	key        stateKey
	val        V
	last       time.Time
	prev, next *lruNode[V]
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, m: make(map[stateKey]*lruNode[V])}
}

// get returns the state for k and marks it used at now. A new key gets
// the value of a reused node: fresh is set and the caller resets it.
func (l *lru[V]) get(k stateKey, now time.Time) (v *V, fresh bool) {
	n, ok := l.m[k]
	if ok {
		l.unlink(n)
	} else {
		if l.free != nil {
			n, l.free = l.free, l.free.next
			l.nfree--
			n.next = nil
		} else {
			n = new(lruNode[V])
		}
		n.key = k
		l.m[k] = n
		fresh = true
	}
	n.last = now
	l.pushFront(n)
	for len(l.m) > l.max && l.tail != nil {
		l.remove(l.tail)
	}
	return &n.val, fresh
}

// expire drops up to limit entries unused since before, oldest first.
func (l *lru[V]) expire(before time.Time, limit int) {
	for ; limit > 0 && l.tail != nil && l.tail.last.Before(before); limit-- {
		l.remove(l.tail)
	}
}

// len returns the number of entries kept.
func (l *lru[V]) len() int { return len(l.m) }

func (l *lru[V]) remove(n *lruNode[V]) {
	l.unlink(n)
	delete(l.m, n.key)
	if l.nfree < maxFree {
		n.key = stateKey{}
		n.next, l.free = l.free, n
		l.nfree++
	}
}

func (l *lru[V]) unlink(n *lruNode[V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else if l.head == n {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else if l.tail == n {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

func (l *lru[V]) pushFront(n *lruNode[V]) {
	n.next = l.head
	if l.head != nil {
		l.head.prev = n
	}
	l.head = n
	if l.tail == nil {
		l.tail = n
	}
}
