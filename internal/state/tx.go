package state

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltNamespace is a handle on one namespace of a boltStore.
type boltNamespace struct {
	s     *boltStore
	name  string
	bname []byte
	// schema is the last version read or written through this handle,
	// what Schema returns when the store cannot be read (after Close).
	schema atomic.Int64
}

// Name is the namespace's name.
func (n *boltNamespace) Name() string { return n.name }

// Schema reads the schema version stored on disk.
func (n *boltNamespace) Schema() int {
	if err := n.s.enter(); err != nil {
		return int(n.schema.Load())
	}
	defer n.s.ops.Done()
	_ = n.s.db.View(func(btx *bolt.Tx) error {
		if b := btx.Bucket(n.bname); b != nil {
			if m, err := readMeta(b); err == nil {
				n.schema.Store(int64(m.Schema))
			}
		}
		return nil
	})
	return int(n.schema.Load())
}

// SetSchema records schema version v.
func (n *boltNamespace) SetSchema(v int) error {
	if v < 0 {
		return fmt.Errorf("%w: %q: schema version %d is negative", ErrBadNamespace, n.name, v)
	}
	if err := n.s.enter(); err != nil {
		return err
	}
	defer n.s.ops.Done()
	err := n.s.db.Update(func(btx *bolt.Tx) error {
		b := btx.Bucket(n.bname)
		if b == nil {
			return fmt.Errorf("namespace is missing from the file")
		}
		return writeMeta(b, meta{Schema: v})
	})
	if err != nil {
		return fmt.Errorf("state: set schema of %q: %w", n.name, err)
	}
	n.schema.Store(int64(v))
	return nil
}

// View runs fn in a read-only transaction.
func (n *boltNamespace) View(fn func(Tx) error) error { return n.run(false, fn) }

// Update runs fn in a read-write transaction.
func (n *boltNamespace) Update(fn func(Tx) error) error { return n.run(true, fn) }

// OnExpire sets the namespace's expiry function; see Namespace.
func (n *boltNamespace) OnExpire(fn func(key string, value []byte)) {
	n.s.exp.handle(n.name, fn)
}

// run is View and Update.
func (n *boltNamespace) run(writable bool, fn func(Tx) error) error {
	if err := n.s.enter(); err != nil {
		return err
	}
	defer n.s.ops.Done()
	btx, err := n.s.db.Begin(writable)
	if err != nil {
		return fmt.Errorf("state: begin in %q: %w", n.name, err)
	}
	// After a Commit this returns bbolt's "tx closed", which is fine.
	defer func() { _ = btx.Rollback() }()
	b := btx.Bucket(n.bname)
	if b == nil {
		return fmt.Errorf("state: namespace %q is missing from %s", n.name, n.s.path)
	}
	t := &boltTx{
		name:     n.name,
		writable: writable,
		now:      n.s.now(),
		data:     b.Bucket(bucketData),
		index:    b.Bucket(bucketIndex),
		expires:  b.Bucket(bucketExpires),
	}
	err = call(fn, t)
	t.done = true
	if err != nil || !writable {
		return err
	}
	if err := btx.Commit(); err != nil {
		return fmt.Errorf("state: commit in %q: %w", n.name, err)
	}
	if t.expiryChanged {
		n.s.exp.poke()
	}
	return nil
}

// call runs fn, turning a panic into a *PanicError.
func call(fn func(Tx) error, t Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return fn(t)
}

// boltTx is a transaction on one namespace.
type boltTx struct {
	name                 string
	writable             bool
	now                  time.Time
	data, index, expires *bolt.Bucket
	done                 bool // fn returned: every call fails
	expiryChanged        bool // an expiry was added or removed: re-arm the timer
}

// Get returns the value of key when it exists and has not expired.
func (t *boltTx) Get(key string) ([]byte, bool) {
	if t.done || checkKey(key) != nil {
		return nil, false
	}
	k := []byte(key)
	v, ok := t.lookup(k)
	if !ok || t.expired(k) {
		return nil, false
	}
	return v, true
}

// lookup finds k in the data bucket. A cursor tells a missing key from an
// empty value, which bbolt's Get does not.
func (t *boltTx) lookup(k []byte) ([]byte, bool) {
	ck, v := t.data.Cursor().Seek(k)
	if ck == nil || !bytes.Equal(ck, k) {
		return nil, false
	}
	if v == nil {
		v = []byte{}
	}
	return v, true
}

// expired tells whether k has an expiry that has come.
func (t *boltTx) expired(k []byte) bool {
	enc := t.expires.Get(k)
	return enc != nil && !decodeTime(enc).After(t.now)
}

// canWrite checks that a write may happen, and its key.
func (t *boltTx) canWrite(key string) error {
	switch {
	case t.done:
		return ErrTxDone
	case !t.writable:
		return ErrReadOnly
	}
	return checkKey(key)
}

// Put sets key to a copy of value, with no expiry.
func (t *boltTx) Put(key string, value []byte) error {
	if err := t.canWrite(key); err != nil {
		return err
	}
	k := []byte(key)
	if err := t.clearExpiry(k); err != nil {
		return fmt.Errorf("state: put %q in %q: %w", key, t.name, err)
	}
	if err := t.put(k, value); err != nil {
		return fmt.Errorf("state: put %q in %q: %w", key, t.name, err)
	}
	return nil
}

// put writes a copy of value: bbolt keeps the slice it is given until the
// commit, and the caller may reuse it.
func (t *boltTx) put(k, value []byte) error {
	v := make([]byte, len(value))
	copy(v, value)
	return t.data.Put(k, v)
}

// PutExpiring sets key to a copy of value until at.
func (t *boltTx) PutExpiring(key string, value []byte, at time.Time) error {
	if err := t.canWrite(key); err != nil {
		return err
	}
	if at.Before(minExpiry) || at.After(maxExpiry) {
		return fmt.Errorf("%w: %v for %q", ErrBadExpiry, at, key)
	}
	k := []byte(key)
	enc := encodeTime(at)
	err := t.clearExpiry(k)
	if err == nil {
		err = t.put(k, value)
	}
	if err == nil {
		err = t.index.Put(indexKey(enc, k), []byte{})
	}
	if err == nil {
		err = t.expires.Put(k, enc)
	}
	if err != nil {
		return fmt.Errorf("state: put %q in %q: %w", key, t.name, err)
	}
	t.expiryChanged = true
	return nil
}

// clearExpiry removes k's expiry, index entry included, if it has one.
func (t *boltTx) clearExpiry(k []byte) error {
	old := t.expires.Get(k)
	if old == nil {
		return nil
	}
	// The index key is built (copied) before the delete, which may
	// reuse the memory old points to.
	ik := indexKey(old, k)
	if err := t.index.Delete(ik); err != nil {
		return err
	}
	t.expiryChanged = true
	return t.expires.Delete(k)
}

// Delete removes key and its expiry.
func (t *boltTx) Delete(key string) error {
	if err := t.canWrite(key); err != nil {
		return err
	}
	k := []byte(key)
	err := t.clearExpiry(k)
	if err == nil {
		err = t.data.Delete(k)
	}
	if err != nil {
		return fmt.Errorf("state: delete %q in %q: %w", key, t.name, err)
	}
	return nil
}

// Expiry returns when key expires.
func (t *boltTx) Expiry(key string) (time.Time, bool) {
	if t.done || checkKey(key) != nil {
		return time.Time{}, false
	}
	enc := t.expires.Get([]byte(key))
	if enc == nil {
		return time.Time{}, false
	}
	at := decodeTime(enc)
	if !at.After(t.now) {
		return time.Time{}, false
	}
	return at, true
}

// ForEach calls fn for each live key with the prefix, in key order.
func (t *boltTx) ForEach(prefix string, fn func(key string, value []byte) error) error {
	if t.done {
		return ErrTxDone
	}
	p := []byte(prefix)
	// A read-only transaction skips the expiry look-up when no key has
	// an expiry; in an Update, fn may add one.
	checkExpiry := t.writable
	if !checkExpiry {
		k, _ := t.expires.Cursor().First()
		checkExpiry = k != nil
	}
	c := t.data.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); {
		key := string(k)
		if !checkExpiry || !t.expired(k) {
			if v == nil {
				v = []byte{}
			}
			if err := fn(key, v); err != nil {
				return err
			}
		}
		if !t.writable {
			k, v = c.Next()
			continue
		}
		// fn may have written, which leaves a bbolt cursor pointing
		// anywhere: find the place again from the key (its copy).
		c = t.data.Cursor()
		k, v = c.Seek([]byte(key))
		if k != nil && string(k) == key {
			k, v = c.Next()
		}
	}
	return nil
}

// The bbolt backend implements the interfaces.
var (
	_ Store     = (*boltStore)(nil)
	_ Namespace = (*boltNamespace)(nil)
	_ Tx        = (*boltTx)(nil)
)
