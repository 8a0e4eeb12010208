package state

import "sync"

// life is a store's open or closed state and the calls under way, so that
// Close can wait for them. A call checks closed and joins ops under the
// same read lock, so none joins after Close set closed.
type life struct {
	mu     sync.RWMutex
	closed bool
	ops    sync.WaitGroup
}

// enter joins a call to ops (the caller calls ops.Done when it is over),
// or fails with ErrClosed after Close.
func (l *life) enter() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.ops.Add(1)
	return nil
}

// shut marks the store closed; it reports false when it already was.
func (l *life) shut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	return true
}
