// Package state is crier's small transactional store: a namespace per
// plugin (and one for the core), explicit transactions, a schema version per
// namespace and absolute-time expiries that survive restarts.
//
// The Store interface is what the bot and plugins use; Open returns the
// bbolt backend (go.etcd.io/bbolt, one file in [bot] state_dir). The
// high-availability work adds a NATS JetStream KV backend behind the same
// interface, so nothing here may assume a local file.
//
//	st, err := state.Open(filepath.Join(dir, "crier.db"), state.Options{Logger: log})
//	ns, err := st.Namespace("commands", 1) // refuses a newer schema on disk
//	err = ns.Update(func(tx state.Tx) error {
//		return tx.Put("acl/alice@example.org", []byte("admin"))
//	})
package state

import (
	"errors"
	"time"
)

// Errors of the state package.
var (
	// ErrSchemaTooNew means a namespace on disk was written by a newer
	// crier than this one: it refuses to start rather than misread it.
	ErrSchemaTooNew = errors.New("state: schema on disk is newer than this binary knows")
	// ErrLocked means another process (another crier) holds the store.
	ErrLocked = errors.New("state: store is locked by another process")
	// ErrCorrupt means the store file cannot be read as a store.
	ErrCorrupt = errors.New("state: store file is corrupt")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("state: store closed")
	// ErrReadOnly is returned by a write inside a View transaction.
	ErrReadOnly = errors.New("state: write in a read-only transaction")
	// ErrBadKey is returned for an empty key or one over MaxKeyBytes.
	ErrBadKey = errors.New("state: bad key")
)

// MaxKeyBytes is the longest key a namespace accepts.
const MaxKeyBytes = 512

// Store is a set of namespaces. It is safe for concurrent use.
type Store interface {
	// Namespace opens (creating it when missing) the namespace name at the
	// schema version the caller knows. A namespace written with a higher
	// version fails with ErrSchemaTooNew; a lower one is returned with
	// Namespace.Schema() telling the stored version, so that the caller
	// can migrate it in a transaction and call SetSchema.
	Namespace(name string, schema int) (Namespace, error)
	// Close releases the store; expiry timers stop. Safe twice.
	Close() error
}

// Namespace is one plugin's part of the store.
type Namespace interface {
	// Name is the namespace's name.
	Name() string
	// Schema is the version stored on disk (0 for a new namespace, which
	// Namespace sets to the caller's version).
	Schema() int
	// SetSchema records a new schema version (after a migration).
	SetSchema(v int) error
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction: every write in it is
	// committed together when fn returns nil, and none when it returns an
	// error or panics. Update returns once the commit is durable.
	Update(fn func(Tx) error) error
	// OnExpire sets the function called (on a goroutine of the store's,
	// one call at a time per namespace) for each key whose expiry time has
	// come, after the key was deleted in the same transaction that found
	// it due. Expiries that came while crier was down fire as soon as
	// OnExpire is set (catch-up), oldest first.
	OnExpire(fn func(key string, value []byte))
}

// Tx is a transaction on one namespace. It must not be used after the
// function it was given to returns.
type Tx interface {
	// Get returns the value of key; ok is false when it is missing (or
	// expired and not yet collected). The slice is valid only during the
	// transaction.
	Get(key string) (value []byte, ok bool)
	// Put sets key to value and removes any expiry of it.
	Put(key string, value []byte) error
	// PutExpiring sets key to value until at (an absolute time): then it
	// is deleted and OnExpire's function called with its last value.
	PutExpiring(key string, value []byte, at time.Time) error
	// Delete removes key (and its expiry); a missing key is not an error.
	Delete(key string) error
	// Expiry returns when key expires; ok is false when it does not.
	Expiry(key string) (at time.Time, ok bool)
	// ForEach calls fn for every key with the prefix, in key order,
	// stopping at the first error, which it returns.
	ForEach(prefix string, fn func(key string, value []byte) error) error
}
