// Package state is crier's small transactional store: a namespace per
// plugin (and one for the core), explicit transactions, a schema version per
// namespace and absolute-time expiries that survive restarts.
//
// The Store interface is what the bot and plugins use; Open returns the
// bbolt backend (go.etcd.io/bbolt, one file in [bot] state_dir), OpenKV
// the NATS JetStream KV backend that several instances share. Nothing in
// the interface assumes a local file.
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
//
// # The NATS JetStream KV backend
//
// OpenKV keeps a store in one KV bucket, shared by every instance that opens
// it. A namespace's keys are <ns>.m (its schema version), <ns>.d.<key> (a
// value: a flag byte, the expiry when it has one, the value) and
// <ns>.e.<time>.<key> (an expiry index entry), the namespace and key
// escaped into KV's key alphabet ('=' and two hex digits for any byte but
// letters, digits, '-', '_' and '/'). Each key has its own revision (the
// stream sequence of its last write); there is no blob of a whole
// namespace that the last writer would win.
//
// What Update guarantees across instances:
//   - A transaction reads each key from the stream's leader the first time
//     it touches it (Get, Expiry, or ForEach's scan of the namespace) and
//     keeps what it read: a key reads the same all through one run of fn.
//   - Its writes, with the expiry index entries they add and remove, are
//     published as one JetStream atomic batch (nats-server 2.12 and later;
//     OpenKV turns it on for the bucket): the server stores all of them or
//     none. Every key written carries the revision the transaction read
//     (read just before the commit for a key written without being read),
//     and the batch is refused when any of them changed since. So the
//     writes of a commit land together, and only on the values they were
//     computed from: no update of a written key is lost.
//   - On a refusal fn runs again from scratch, up to KVOptions.Retries more
//     times, then Update fails with ErrConflict having written nothing. fn
//     must therefore have no effect outside its transaction.
//   - Update returns once the stream acknowledged the batch: stored on a
//     quorum of the bucket's replicas. A commit that got no answer fails
//     with ErrUnknownOutcome and is not run again (it may have landed).
//
// What it does not guarantee:
//   - A key that fn only read is not checked at the commit: fn may commit
//     writes computed from a value another instance changed meanwhile (write
//     skew). To depend on a key, write it too (Put its value back).
//   - The reads of one transaction, and those of a View, are not one
//     snapshot: two keys may be read at different moments of the bucket.
//     ForEach lists the namespace with one ordered consumer, also not a
//     point-in-time copy.
//   - A commit holds at most 1000 messages (writes and expiry entries):
//     more fails with ErrTooLarge. Updates of one namespace in one process
//     run one at a time; between processes only the revisions order them.
//
// Deleted keys leave a marker that the bucket drops after an hour.
//
// Fencing (Fencer): a leader calls Fence with its term's token, which
// writes the bucket's key "fence" (refused with ErrFenced when it holds a
// newer token of the same epoch, the lease bucket's incarnation). From then on each commit adds a message on "fence.w" (the
// token) that expects the revision of "fence" this store wrote
// (Nats-Expected-Last-Subject-Sequence with -Subject naming "fence"), so
// the server refuses the whole batch once a newer leader rewrote the
// fence: the write returns ErrFenced and Fence's callback is told. Fenced
// commits of one store run one at a time. Unfence ends it for a standby.
//
// Expiries: each store runs a collector for the namespaces that called
// OnExpire on it. It lists their expiry index entries at the earliest due
// one or every KVOptions.SweepInterval (how late an expiry set by another
// instance can fire), and deletes each due key together with its entry on
// the revision it read: of the instances that try, one succeeds, and
// OnExpire's function is called there, once. A due key is hidden from
// reads until it is collected, as in the bbolt backend.
package state
