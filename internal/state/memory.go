package state

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// NewMemory returns a Store that keeps everything in memory: what crier
// uses when [bot] state_dir is not set, and what tests use. It has the
// same transactions (an Update's writes apply together or not at all) and
// expiries, but nothing survives the process.
func NewMemory() Store {
	return &memStore{ns: make(map[string]*memNS)}
}

type memStore struct {
	mu     sync.Mutex
	ns     map[string]*memNS
	closed bool
}

func (s *memStore) Namespace(name string, schema int) (Namespace, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	n := s.ns[name]
	if n == nil {
		n = &memNS{name: name, schema: schema, data: map[string]memVal{}, closed: &s.closed, smu: &s.mu}
		s.ns[name] = n
	}
	if n.schema > schema {
		return nil, fmt.Errorf("%w: namespace %q is at version %d, this crier knows %d", ErrSchemaTooNew, name, n.schema, schema)
	}
	return n, nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	list := make([]*memNS, 0, len(s.ns))
	for _, n := range s.ns {
		list = append(list, n)
	}
	// The namespaces' locks are taken after the store's is released: a
	// transaction holds its namespace's lock and then asks the store's.
	s.mu.Unlock()
	for _, n := range list {
		n.mu.Lock()
		if n.timer != nil {
			n.timer.Stop()
		}
		n.mu.Unlock()
	}
	return nil
}

type memVal struct {
	v  []byte
	at time.Time // zero: no expiry
}

type memNS struct {
	name   string
	smu    *sync.Mutex
	closed *bool

	mu       sync.Mutex // serialises transactions
	schema   int
	data     map[string]memVal
	onExpire func(string, []byte)
	timer    *time.Timer
	firing   sync.Mutex // one OnExpire call at a time
}

func (n *memNS) isClosed() bool {
	n.smu.Lock()
	defer n.smu.Unlock()
	return *n.closed
}

func (n *memNS) Name() string { return n.name }

func (n *memNS) Schema() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.schema
}

func (n *memNS) SetSchema(v int) error {
	if n.isClosed() {
		return ErrClosed
	}
	n.mu.Lock()
	n.schema = v
	n.mu.Unlock()
	return nil
}

func (n *memNS) View(fn func(Tx) error) error {
	if n.isClosed() {
		return ErrClosed
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return fn(&memTx{n: n, ro: true})
}

func (n *memNS) Update(fn func(Tx) error) (err error) {
	if n.isClosed() {
		return ErrClosed
	}
	n.mu.Lock()
	tx := &memTx{n: n, writes: map[string]*memVal{}}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("state: transaction on %q panicked (rolled back): %v", n.name, p)
		}
		n.mu.Unlock()
		if err == nil {
			n.arm()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	for k, v := range tx.writes {
		if v == nil {
			delete(n.data, k)
		} else {
			n.data[k] = *v
		}
	}
	return nil
}

func (n *memNS) OnExpire(fn func(key string, value []byte)) {
	n.mu.Lock()
	n.onExpire = fn
	n.mu.Unlock()
	n.arm()
}

// arm sets the timer for the earliest expiry.
func (n *memNS) arm() {
	if n.isClosed() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.onExpire == nil {
		return
	}
	var next time.Time
	for _, v := range n.data {
		if !v.at.IsZero() && (next.IsZero() || v.at.Before(next)) {
			next = v.at
		}
	}
	if n.timer != nil {
		n.timer.Stop()
	}
	if next.IsZero() {
		return
	}
	n.timer = time.AfterFunc(max(time.Until(next), 0), n.fire)
}

// fire deletes the due keys and calls OnExpire for each, oldest first.
func (n *memNS) fire() {
	n.firing.Lock()
	defer n.firing.Unlock()
	now := time.Now()
	type due struct {
		k  string
		v  memVal
		at time.Time
	}
	var list []due
	n.mu.Lock()
	for k, v := range n.data {
		if !v.at.IsZero() && !v.at.After(now) {
			list = append(list, due{k, v, v.at})
			delete(n.data, k)
		}
	}
	fn := n.onExpire
	n.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].at.Before(list[j].at) })
	for _, d := range list {
		if fn != nil {
			fn(d.k, d.v.v)
		}
	}
	n.arm()
}

type memTx struct {
	n      *memNS
	ro     bool
	writes map[string]*memVal // nil value: deleted
}

func (t *memTx) lookup(k string) (memVal, bool) {
	if w, ok := t.writes[k]; ok {
		if w == nil {
			return memVal{}, false
		}
		return *w, true
	}
	v, ok := t.n.data[k]
	return v, ok
}

func (t *memTx) Get(key string) ([]byte, bool) {
	v, ok := t.lookup(key)
	return v.v, ok
}

func (t *memTx) put(key string, value []byte, at time.Time) error {
	if t.ro {
		return ErrReadOnly
	}
	if err := checkKey(key); err != nil {
		return err
	}
	t.writes[key] = &memVal{v: append([]byte(nil), value...), at: at}
	return nil
}

func (t *memTx) Put(key string, value []byte) error { return t.put(key, value, time.Time{}) }

func (t *memTx) PutExpiring(key string, value []byte, at time.Time) error {
	return t.put(key, value, at)
}

func (t *memTx) Delete(key string) error {
	if t.ro {
		return ErrReadOnly
	}
	t.writes[key] = nil
	return nil
}

func (t *memTx) Expiry(key string) (time.Time, bool) {
	v, ok := t.lookup(key)
	return v.at, ok && !v.at.IsZero()
}

func (t *memTx) ForEach(prefix string, fn func(key string, value []byte) error) error {
	keys := map[string]bool{}
	for k := range t.n.data {
		keys[k] = true
	}
	for k := range t.writes {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if strings.HasPrefix(k, prefix) {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if v, ok := t.lookup(k); ok {
			if err := fn(k, v.v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Namespaces lists the namespaces (Lister).
func (s *memStore) Namespaces() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	names := make([]string, 0, len(s.ns))
	for n := range s.ns {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
