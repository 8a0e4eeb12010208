package webhooks

import (
	"sync"

	"crier/internal/state"
)

// maxWrites bounds the writes one transaction of the writer carries.
const maxWrites = 256

// write is one change to the state, and, when done is not nil, who waits
// for it to be committed.
type write struct {
	fn   func(state.Tx) error
	done chan error
}

// writer commits the plugin's state changes from one goroutine, as many
// as are waiting in one transaction: under load a transaction per
// delivered stanza and per request would make the store (its lock, and
// with bbolt its fsync) the bottleneck. Writes are committed in the order
// they were given.
type writer struct {
	ns     state.Namespace
	ch     chan write
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newWriter(ns state.Namespace) *writer {
	w := &writer{ns: ns, ch: make(chan write, 4*maxWrites)}
	w.wg.Add(1)
	go w.run()
	return w
}

// do commits fn and waits for the commit when wait is set. After close it
// commits fn at once on the caller's goroutine.
func (w *writer) do(fn func(state.Tx) error, wait bool) error {
	wr := write{fn: fn}
	if wait {
		wr.done = make(chan error, 1)
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.ns.Update(fn)
	}
	// Sent under the lock, so that close never races a send; the channel
	// is buffered and drained by run, which takes no lock.
	w.ch <- wr
	w.mu.Unlock()
	if wait {
		return <-wr.done
	}
	return nil
}

func (w *writer) run() {
	defer w.wg.Done()
	for first := range w.ch {
		batch := []write{first}
	more:
		for len(batch) < maxWrites {
			select {
			case wr, ok := <-w.ch:
				if !ok {
					break more
				}
				batch = append(batch, wr)
			default:
				break more
			}
		}
		err := w.ns.Update(func(tx state.Tx) error {
			for _, wr := range batch {
				if err := wr.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		for _, wr := range batch {
			if wr.done != nil {
				wr.done <- err
			}
		}
	}
}

// close commits what is waiting and ends the goroutine; later writes are
// committed by their callers. Safe twice.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
