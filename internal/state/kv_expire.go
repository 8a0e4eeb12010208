package state

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// kvSweepBatch is the most due keys one look at a namespace collects.
const kvSweepBatch = 1000

// kvSweeper collects the due keys of a kvStore's namespaces that called
// OnExpire: one goroutine that looks at their expiry index entries, at the
// earliest due one or after the sweep interval, whichever comes first.
// Every instance sharing the bucket runs one; the delete of a due key is
// conditional on the revision the collector read, so a key is collected
// (and its function called) by one instance only.
type kvSweeper struct {
	s        *kvStore
	interval time.Duration
	wake     chan struct{}
	quit     chan struct{}
	done     chan struct{}

	mu       sync.Mutex
	handlers map[string]*kvHandler
}

// kvHandler is one namespace's expiry function.
type kvHandler struct {
	n  *kvNamespace
	fn func(key string, value []byte)
}

func newKVSweeper(s *kvStore, interval time.Duration) *kvSweeper {
	e := &kvSweeper{
		s: s, interval: interval,
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		handlers: map[string]*kvHandler{},
	}
	go e.run()
	return e
}

// handle sets a namespace's expiry function and wakes the collector, which
// collects what is already due (catch-up).
func (e *kvSweeper) handle(n *kvNamespace, fn func(string, []byte)) {
	e.mu.Lock()
	e.handlers[n.name] = &kvHandler{n: n, fn: fn}
	e.mu.Unlock()
	e.poke()
}

// poke has the collector look again (after a commit that added an expiry).
func (e *kvSweeper) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// stop ends the collector once the expiry function under way returned.
func (e *kvSweeper) stop() {
	close(e.quit)
	<-e.done
}

func (e *kvSweeper) run() {
	defer close(e.done)
	timer := time.NewTimer(e.interval)
	defer timer.Stop()
	for {
		wait := e.interval
		if next, ok := e.sweepAll(); ok {
			wait = min(max(next.Sub(e.s.now()), 0), e.interval)
		}
		timer.Reset(wait)
		select {
		case <-e.quit:
			return
		case <-e.wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

// sweepAll collects the due keys of every handled namespace and returns the
// earliest expiry left.
func (e *kvSweeper) sweepAll() (next time.Time, ok bool) {
	e.mu.Lock()
	hs := make([]*kvHandler, 0, len(e.handlers))
	for _, h := range e.handlers {
		hs = append(hs, h)
	}
	e.mu.Unlock()
	slices.SortFunc(hs, func(a, b *kvHandler) int { return strings.Compare(a.n.name, b.n.name) })
	for _, h := range hs {
		select {
		case <-e.quit:
			return next, ok
		default:
		}
		n, found, err := e.sweep(h)
		if err != nil {
			e.s.log.Warn("expiry collection failed; trying again", "bucket", e.s.bucket, "namespace", h.n.name, "err", err)
			n, found = e.s.now().Add(e.interval), true
		}
		if found && (!ok || n.Before(next)) {
			next, ok = n, true
		}
	}
	return next, ok
}

// indexEntry is one parsed expiry index key.
type indexEntry struct {
	kvKey string
	at    time.Time
	key   string
}

// sweep collects one namespace's due keys, oldest first, and returns the
// earliest expiry not yet due.
func (e *kvSweeper) sweep(h *kvHandler) (next time.Time, ok bool, err error) {
	n := h.n
	ctx, cancel := e.s.ctx()
	defer cancel()
	lister, err := e.s.kv.ListKeysFiltered(ctx, n.ens+kvIndex+">")
	if err != nil {
		return next, false, fmt.Errorf("list expiry index: %w", err)
	}
	cut := len(n.ens + kvIndex)
	now := e.s.now()
	var due []indexEntry
	for k := range lister.Keys() {
		ie, perr := parseIndexKey(k, cut)
		if perr != nil {
			e.s.log.Warn("state: skipped a malformed expiry index entry", "bucket", e.s.bucket, "key", k, "err", perr)
			continue
		}
		if ie.at.After(now) {
			if !ok || ie.at.Before(next) {
				next, ok = ie.at, true
			}
			continue
		}
		due = append(due, ie)
	}
	if err := ctx.Err(); err != nil {
		return next, ok, fmt.Errorf("list expiry index: %w", err)
	}
	slices.SortFunc(due, func(a, b indexEntry) int { return a.at.Compare(b.at) })
	if len(due) > kvSweepBatch {
		due, next, ok = due[:kvSweepBatch], now, true
	}
	for _, ie := range due {
		if err := e.collect(h, ie); err != nil {
			return next, ok, err
		}
	}
	return next, ok, nil
}

// collect deletes one due key, when it still expires at its index entry's
// time, together with the entry, on the revision read: of the instances
// that try, one succeeds and calls the function. A stale entry (the key
// was given another expiry or deleted) is removed alone.
func (e *kvSweeper) collect(h *kvHandler, ie indexEntry) error {
	n := h.n
	dk := n.ens + kvData + escape(ie.key)
	raw, err := e.s.get(dk)
	if err != nil {
		return err
	}
	var v []byte
	var at time.Time
	if raw.rev != 0 && !raw.deleted {
		v, at, err = unwrapValue(raw.data)
		if err != nil {
			e.s.log.Warn("state: key is not in crier's format", "bucket", e.s.bucket, "key", dk, "err", err)
		}
	}
	if err != nil || raw.rev == 0 || raw.deleted || !at.Equal(ie.at) {
		if err := e.s.commit([]*nats.Msg{e.s.purgeMsg(ie.kvKey, nil)}); err != nil {
			return fmt.Errorf("drop stale expiry entry of %q: %w", ie.key, err)
		}
		return nil
	}
	rev := raw.rev
	err = e.s.commit([]*nats.Msg{e.s.purgeMsg(dk, &rev), e.s.purgeMsg(ie.kvKey, nil)})
	switch {
	case err == nil:
	case isConflict(err):
		// Another instance collected it, or it was written again.
		return nil
	default:
		return fmt.Errorf("delete due key %q: %w", ie.key, err)
	}
	if h.fn != nil {
		e.call(n.name, h.fn, ie.key, v)
	}
	return nil
}

// call calls an expiry function, logging a panic so that the next key still
// gets its call.
func (e *kvSweeper) call(name string, fn func(string, []byte), key string, v []byte) {
	defer func() {
		if r := recover(); r != nil {
			e.s.log.Warn("expiry function panicked", "namespace", name, "key", key, "err", r)
		}
	}()
	fn(key, v)
}

// parseIndexKey parses an expiry index KV key; cut is the length of its
// namespace prefix.
func parseIndexKey(k string, cut int) (indexEntry, error) {
	rest := k[cut:]
	hexTime, ekey, found := strings.Cut(rest, ".")
	if !found || len(hexTime) != 16 {
		return indexEntry{}, fmt.Errorf("no time")
	}
	u, err := strconv.ParseUint(hexTime, 16, 64)
	if err != nil {
		return indexEntry{}, fmt.Errorf("time: %v", err)
	}
	var b [8]byte
	for i := range 8 {
		b[i] = byte(u >> (56 - 8*i))
	}
	key, err := unescape(ekey)
	if err != nil {
		return indexEntry{}, err
	}
	return indexEntry{kvKey: k, at: decodeTime(b[:]), key: key}, nil
}
