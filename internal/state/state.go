package state

import (
	"errors"
	"fmt"
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
	// ErrBadNamespace is returned by Store.Namespace for a name that is
	// empty, longer than MaxNamespaceBytes or has a byte outside
	// [A-Za-z0-9._-], and for a negative schema version.
	ErrBadNamespace = errors.New("state: bad namespace")
	// ErrBadExpiry is returned by Tx.PutExpiring for a time outside the
	// years 1678 to 2261 (the zero time, for one).
	ErrBadExpiry = errors.New("state: bad expiry time")
	// ErrTxDone is returned by a Tx used after its function returned.
	ErrTxDone = errors.New("state: transaction already finished")
	// ErrPanic is wrapped by the PanicError that View and Update return
	// when their function panicked.
	ErrPanic = errors.New("state: transaction function panicked")
	// ErrConflict is returned by the KV backend's Update when other
	// writers changed the keys it read every time it ran its function,
	// KVOptions.Retries times over; nothing of it was written.
	ErrConflict = errors.New("state: transaction kept conflicting with other writers")
	// ErrTooLarge is returned by the KV backend's Update for a
	// transaction writing more keys than one commit can hold.
	ErrTooLarge = errors.New("state: transaction too large")
	// ErrUnknownOutcome is returned by the KV backend when a commit got
	// no answer: it may or may not have been written, and it is not run
	// again (its function could count twice).
	ErrUnknownOutcome = errors.New("state: commit outcome unknown")
	// ErrBadBucket is returned by OpenKV for a bucket whose settings
	// would lose state (a TTL, a size limit) or that cannot take commits
	// (a mirror).
	ErrBadBucket = errors.New("state: bucket unfit for the state store")
)

// Limits of keys and namespace names.
const (
	// MaxKeyBytes is the longest key a namespace accepts.
	MaxKeyBytes = 512
	// MaxNamespaceBytes is the longest namespace name.
	MaxNamespaceBytes = 64
)

// PanicError is returned by View and Update when their function panicked:
// the transaction was rolled back and the panic stopped there, so that a
// plugin's bug costs its own call and not the daemon. It wraps ErrPanic and,
// when the panic value is an error, that error too.
type PanicError struct {
	// Value is what the function panicked with.
	Value any
	// Stack is the panicking goroutine's stack, for the log.
	Stack []byte
}

// Error says that the function panicked and with what.
func (e *PanicError) Error() string {
	return fmt.Sprintf("%v: %v", ErrPanic, e.Value)
}

// Unwrap returns ErrPanic and, when the panic value is an error, that error.
func (e *PanicError) Unwrap() []error {
	if err, ok := e.Value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}

// Store is a set of namespaces. It is safe for concurrent use.
type Store interface {
	// Namespace opens (creating it when missing) the namespace name at the
	// schema version the caller knows. A namespace written with a higher
	// version fails with ErrSchemaTooNew; a lower one is returned with
	// Namespace.Schema() telling the stored version, so that the caller
	// can migrate it in a transaction and call SetSchema. A namespace that
	// did not exist is created at the caller's version. Calls for the same
	// name return handles on the same data.
	Namespace(name string, schema int) (Namespace, error)
	// Close releases the store: the expiry timer stops, Close waits for
	// the expiry functions already called or due to be called (their keys
	// are deleted already) and for transactions under way. Every call
	// after it returns ErrClosed. Safe twice.
	Close() error
}

// Namespace is one plugin's part of the store.
type Namespace interface {
	// Name is the namespace's name.
	Name() string
	// Schema is the version stored on disk: the caller's version for a
	// namespace that Namespace created, the older one for a namespace
	// awaiting migration.
	Schema() int
	// SetSchema records a new schema version (after a migration). It is
	// its own transaction, so a migration should be safe to run twice.
	SetSchema(v int) error
	// View runs fn in a read-only transaction; writes in it return
	// ErrReadOnly. A panic in fn is returned as a *PanicError.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction: every write in it is
	// committed together when fn returns nil, and none when it returns an
	// error (returned as it is) or panics (returned as a *PanicError, not
	// re-raised). Update returns once the commit is durable. Transactions
	// of a store run one Update at a time; fn must not start another
	// transaction of the same store.
	Update(fn func(Tx) error) error
	// OnExpire sets the function called (on a goroutine of the store's,
	// one call at a time per namespace, holding no lock of the store's)
	// for each key whose expiry time has come, after the key was deleted
	// in the transaction that found it due. Expiries that came while crier
	// was down fire as soon as OnExpire is set (catch-up), oldest first.
	// Until a namespace calls OnExpire its due keys are kept (hidden from
	// Get, Expiry and ForEach); OnExpire(nil) has them deleted with no
	// call. A panic in fn is logged and the next key goes on.
	OnExpire(fn func(key string, value []byte))
}

// Tx is a transaction on one namespace. It must not be used after the
// function it was given to returns.
type Tx interface {
	// Get returns the value of key; ok is false when it is missing (or
	// expired and not yet collected). The slice is valid only during the
	// transaction.
	Get(key string) (value []byte, ok bool)
	// Put sets key to value (a copy of it) and removes any expiry of it.
	Put(key string, value []byte) error
	// PutExpiring sets key to value (a copy) until at (an absolute time,
	// kept to the nanosecond): then it is deleted and OnExpire's function
	// called with its last value. A time already past expires at once.
	PutExpiring(key string, value []byte, at time.Time) error
	// Delete removes key (and its expiry); a missing key is not an error.
	Delete(key string) error
	// Expiry returns when key expires; ok is false when it does not.
	Expiry(key string) (at time.Time, ok bool)
	// ForEach calls fn for every key with the prefix, in key order,
	// stopping at the first error, which it returns. The value is valid
	// only during the call. In an Update, fn may Put and Delete (the
	// iteration goes on after the key it was given).
	ForEach(prefix string, fn func(key string, value []byte) error) error
}
