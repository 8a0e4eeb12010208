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
//	ns.OnExpire(func(key string, value []byte) { log.Info("expired", "key", key) })
//
// # The bbolt backend
//
// The file holds one top-level bucket per namespace. Each has a meta record
// (its schema version), a data bucket (key to value), an expiry index whose
// keys are the expiry time (8 bytes, big-endian, ordered like the time)
// followed by the key, so that the next due expiry is the index's first key,
// and a bucket from key to expiry time, so that Put and Delete find and
// remove a key's old index entry.
//
// Update returns after bbolt's commit, which fsyncs the file: a committed
// write survives a crash or a SIGKILL (a test kills a writer and checks).
// Open takes bbolt's exclusive file lock (another crier gets ErrLocked after
// Options.LockTimeout), checks that the file is as long as its pages need
// and reads every page of the namespaces once, so that a truncated or
// damaged file is reported as ErrCorrupt at start rather than found while
// serving (bbolt panics on some damage; Open recovers and says so).
//
// # Expiries
//
// One timer per store is armed for the earliest due expiry among the
// namespaces that have called OnExpire. When it fires, the due keys are
// deleted in one transaction and, after the commit, each namespace's
// function is called for its keys, oldest first, one call at a time, on a
// goroutine of the store's that holds no lock of bbolt's (so it may run its
// own transactions). A namespace that has not called OnExpire keeps its due
// keys (Get, Expiry and ForEach no longer see them) until it does: then they
// fire at once, which is how expiries that came while crier was down are
// caught up.
package state
