package state

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Limits of the expiry sweeper.
const (
	// sweepBatch is the most keys one sweep transaction deletes, so that
	// a long catch-up does not hold bbolt's writer lock for long.
	sweepBatch = 1000
	// maxSleep is the longest the timer is armed for: the expiry times
	// are wall-clock times and the timer's clock is monotonic, so a clock
	// step is noticed within it.
	maxSleep = time.Minute
	// retryDelay is the wait after a sweep that failed, doubled after
	// each further failure up to maxSleep.
	retryDelay = time.Second
)

// errNothingDue rolls back a sweep that found nothing to delete, which
// saves its commit (an fsync).
var errNothingDue = errors.New("state: nothing due")

// expirer is a store's expiry sweeper: one goroutine with one timer,
// armed for the earliest expiry among the namespaces that called OnExpire,
// and per namespace a goroutine that runs while it has expiry functions to
// call.
type expirer struct {
	s     *boltStore
	wake  chan struct{} // capacity 1: a poke while the sweeper is busy is kept
	quit  chan struct{}
	done  chan struct{} // closed when the sweeper returned
	calls sync.WaitGroup
	retry time.Duration // the sweeper's wait after a failure; its own

	mu       sync.Mutex
	handlers map[string]*handler
}

// handler is one namespace's expiry function and the calls waiting for it.
type handler struct {
	name    string
	fn      func(key string, value []byte)
	queue   []expired
	running bool // a goroutine is draining queue
}

// expired is a key that a sweep deleted, with its last value.
type expired struct {
	key   string
	value []byte
}

// batch is what one sweep deleted in one namespace, oldest first.
type batch struct {
	name  string
	items []expired
}

func newExpirer(s *boltStore) *expirer {
	e := &expirer{
		s:        s,
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		handlers: make(map[string]*handler),
	}
	go e.run()
	return e
}

// handle sets namespace name's expiry function and wakes the sweeper, which
// fires what is already due (catch-up).
func (e *expirer) handle(name string, fn func(string, []byte)) {
	e.mu.Lock()
	h := e.handlers[name]
	if h == nil {
		h = &handler{name: name}
		e.handlers[name] = h
	}
	h.fn = fn
	e.mu.Unlock()
	e.poke()
}

// poke has the sweeper look at the expiries again (after a commit that
// added or removed some).
func (e *expirer) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// stop ends the sweeper and waits for the expiry functions: those of keys
// already deleted are still called.
func (e *expirer) stop() {
	close(e.quit)
	<-e.done
	e.calls.Wait()
}

// run is the sweeper goroutine.
func (e *expirer) run() {
	defer close(e.done)
	timer := time.NewTimer(maxSleep)
	timer.Stop()
	for {
		if next, ok := e.sweepAll(); ok {
			d := min(max(next.Sub(e.s.now()), 0), maxSleep)
			timer.Reset(d)
		} else {
			timer.Stop()
		}
		select {
		case <-e.quit:
			timer.Stop()
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// sweepAll sweeps until nothing is due and returns the next expiry of the
// namespaces that have a handler; ok is false when they have none.
func (e *expirer) sweepAll() (next time.Time, ok bool) {
	for {
		select {
		case <-e.quit:
			return time.Time{}, false
		default:
		}
		names := e.handled()
		if len(names) == 0 {
			return time.Time{}, false
		}
		now := e.s.now()
		fired, next, ok, full, err := e.sweep(names, now)
		if err != nil {
			e.retry = min(max(2*e.retry, retryDelay), maxSleep)
			e.s.log.Warn("expiry sweep failed; trying again", "path", e.s.path, "in", e.retry, "err", err)
			return now.Add(e.retry), true
		}
		e.retry = 0
		e.deliver(fired)
		if !full {
			return next, ok
		}
	}
}

// handled returns the namespaces that called OnExpire, in name order.
func (e *expirer) handled() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(e.handlers))
	for name := range e.handlers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// sweep deletes, in one transaction, the keys of names due at now (at most
// sweepBatch; full tells that the batch was filled), and finds the next
// expiry left.
func (e *expirer) sweep(names []string, now time.Time) (fired []batch, next time.Time, ok, full bool, err error) {
	// The sweeper must not die: a panic (a damaged page) is a failed
	// sweep, tried again later.
	defer func() {
		if r := recover(); r != nil {
			fired, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	budget := sweepBatch
	err = e.s.db.Update(func(btx *bolt.Tx) error {
		changed := false
		for _, name := range names {
			b := btx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			items, n, err := e.sweepNamespace(name, b, now, budget)
			if err != nil {
				return fmt.Errorf("namespace %q: %w", name, err)
			}
			budget -= n
			changed = changed || n > 0
			if len(items) > 0 {
				fired = append(fired, batch{name: name, items: items})
			}
			if k, _ := b.Bucket(bucketIndex).Cursor().First(); k != nil {
				if at := decodeTime(k[:8]); !ok || at.Before(next) {
					next, ok = at, true
				}
			}
		}
		full = budget <= 0
		if !changed {
			return errNothingDue
		}
		return nil
	})
	if errors.Is(err, errNothingDue) {
		err = nil
	}
	if err != nil {
		return nil, time.Time{}, false, false, err
	}
	return fired, next, ok, full, nil
}

// sweepNamespace deletes up to budget due keys of one namespace, oldest
// first, and returns them with the number of index entries it removed.
func (e *expirer) sweepNamespace(name string, b *bolt.Bucket, now time.Time, budget int) (items []expired, n int, err error) {
	index, data, expires := b.Bucket(bucketIndex), b.Bucket(bucketData), b.Bucket(bucketExpires)
	c := index.Cursor()
	// Each turn deletes the first index entry, so the next one is first.
	for k, _ := c.First(); k != nil && n < budget; k, _ = c.First() {
		ik := bytes.Clone(k)
		if len(ik) <= 8 {
			e.s.log.Warn("dropped a malformed expiry index entry", "namespace", name, "entry", fmt.Sprintf("%x", ik))
		} else {
			at, key := decodeTime(ik[:8]), ik[8:]
			if at.After(now) {
				break
			}
			enc := expires.Get(key)
			if enc != nil && bytes.Equal(enc, ik[:8]) {
				if v := data.Get(key); v != nil {
					items = append(items, expired{key: string(key), value: bytes.Clone(v)})
				}
				if err := data.Delete(key); err != nil {
					return nil, 0, err
				}
				if err := expires.Delete(key); err != nil {
					return nil, 0, err
				}
			} else {
				e.s.log.Warn("dropped a stale expiry index entry", "namespace", name, "key", string(key))
			}
		}
		if err := index.Delete(ik); err != nil {
			return nil, 0, err
		}
		n++
	}
	return items, n, nil
}

// deliver queues the expiry function calls of a committed sweep, starting a
// goroutine for each namespace that has none running.
func (e *expirer) deliver(fired []batch) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range fired {
		h := e.handlers[b.name]
		h.queue = append(h.queue, b.items...)
		if !h.running {
			h.running = true
			e.calls.Add(1)
			go e.drain(h)
		}
	}
}

// drain calls h's function for its queue, one key at a time, and ends
// when the queue is empty. It holds no lock while calling: the function
// may run transactions or set its handler again.
func (e *expirer) drain(h *handler) {
	defer e.calls.Done()
	for {
		e.mu.Lock()
		if len(h.queue) == 0 {
			h.running = false
			h.queue = nil
			e.mu.Unlock()
			return
		}
		it := h.queue[0]
		h.queue[0] = expired{}
		h.queue = h.queue[1:]
		fn := h.fn
		e.mu.Unlock()
		if fn != nil {
			e.callOne(h.name, fn, it)
		}
	}
}

// callOne calls an expiry function, logging a panic so that the next key
// still gets its call.
func (e *expirer) callOne(name string, fn func(string, []byte), it expired) {
	defer func() {
		if r := recover(); r != nil {
			e.s.log.Warn("expiry function panicked", "namespace", name, "key", it.key, "err", r)
		}
	}()
	fn(it.key, it.value)
}
