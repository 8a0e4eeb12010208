package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// Logger receives the line that says the store is open and warnings
	// about problems the store recovered from; nil discards them.
	Logger *slog.Logger
	// Now is the clock that expiries are compared with; nil is time.Now.
	// Tests set it to see what a restart after a long stop does.
	Now func() time.Time
	// LockTimeout is how long Open waits for the file lock that another
	// process holds before it fails with ErrLocked; 0 means one second.
	LockTimeout time.Duration
}

// The layout of a namespace's bucket.
var (
	bucketData    = []byte("data")    // key -> value
	bucketIndex   = []byte("expiry")  // expiry time (8 bytes) + key -> nothing
	bucketExpires = []byte("expires") // key -> expiry time (8 bytes)
	keyMeta       = []byte("meta")    // JSON meta record
)

// meta is the record kept in each namespace's bucket.
type meta struct {
	Schema int `json:"schema"`
}

// The range of times an expiry index key can hold: nanoseconds since 1970
// in an int64.
var (
	minExpiry = time.Unix(0, math.MinInt64)
	maxExpiry = time.Unix(0, math.MaxInt64)
)

// boltStore is the bbolt backend of Store.
type boltStore struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
	now  func() time.Time
	exp  *expirer

	life // open or closed, and the calls under way
}

// Open opens (creating it when missing) the store file at path, with bbolt's
// exclusive lock on it. The file's directory is created (mode 0o700) when
// missing; the file is created with mode 0o600, and an existing one open to
// others is made so. A file locked by another process fails with an error
// wrapping ErrLocked after opts.LockTimeout; one that cannot be read as a
// store, with an error wrapping ErrCorrupt. Both name the file.
func Open(path string, opts Options) (Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("state: %s is a directory, not a store file", path)
	}
	if err := checkSize(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	s := &boltStore{db: db, path: path, log: opts.Logger, now: opts.Now}
	names, err := s.check()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.makePrivate()
	s.exp = newExpirer(s)
	s.log.Info("state store open", "path", path, "namespaces", names)
	return s, nil
}

// openBolt opens the bbolt file, turning its lock time-out into ErrLocked
// and its complaints about the content, panics included, into ErrCorrupt.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	// bbolt can panic on a damaged file (a freelist page that is garbage),
	// and a page past the end of a truncated file faults in the memory
	// map; SetPanicOnFault makes that fault a panic too. After a panic
	// bbolt has neither unlocked nor closed the file, so OpenFile keeps it
	// for this function to do so. (The memory map is left: bbolt keeps
	// its address to itself.)
	var file *os.File
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				unlock(file)
				_ = file.Close()
			}
			db, err = nil, corrupt(path, fmt.Errorf("%v", r))
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is held by another crier (waited %v): stop that one, or give this one another state_dir",
			ErrLocked, path, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch),
		strings.Contains(err.Error(), "file size too small"):
		return nil, corrupt(path, err)
	}
	return nil, fmt.Errorf("state: open %s: %w", path, err)
}

// The parts of bbolt's file format (version 2) that checkSize reads: a
// meta page is a 16-byte page header and then the meta fields, native-endian.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	metaOffset     = 16 // the page header
	metaChecksumAt = 56 // bytes of meta that the FNV-64a checksum covers
	noFreelist     = math.MaxUint64
)

// checkSize refuses a file whose newest valid meta page names pages past
// its end: bbolt does not check, and reads past its memory map. A file with
// no valid meta page is left to bbolt to refuse.
func checkSize(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	type metaPage struct {
		pageSize             uint32
		freelist, pgid, txid uint64
		ok                   bool
	}
	readMeta := func(off int64) (m metaPage) {
		buf := make([]byte, metaOffset+metaChecksumAt+8)
		if _, err := f.ReadAt(buf, off); err != nil {
			return m
		}
		b, ne := buf[metaOffset:], binary.NativeEndian
		h := fnv.New64a()
		_, _ = h.Write(b[:metaChecksumAt])
		if ne.Uint32(b[0:]) != boltMagic || ne.Uint32(b[4:]) != boltVersion || ne.Uint64(b[metaChecksumAt:]) != h.Sum64() {
			return m
		}
		return metaPage{ne.Uint32(b[8:]), ne.Uint64(b[32:]), ne.Uint64(b[40:]), ne.Uint64(b[48:]), true}
	}
	// The second meta page is one page in: the first tells the page
	// size, and when it is damaged bbolt takes the machine's.
	m := readMeta(0)
	pageSize := int64(os.Getpagesize())
	if m.ok {
		pageSize = int64(m.pageSize)
	}
	if m1 := readMeta(pageSize); m1.ok && (!m.ok || m1.txid > m.txid) {
		m = m1
	}
	if !m.ok {
		return nil
	}
	// The size is read after the meta pages: another crier may be
	// writing the file (Open fails later with ErrLocked), and bbolt grows
	// the file before it writes the meta page that needs the new size.
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if need := m.pgid * uint64(m.pageSize); need > uint64(fi.Size()) {
		return corrupt(path, fmt.Errorf("it is %d bytes long but its pages need %d (truncated)", fi.Size(), need))
	}
	if m.freelist != noFreelist && m.freelist >= m.pgid {
		return corrupt(path, fmt.Errorf("its freelist page %d is past its last page %d", m.freelist, m.pgid-1))
	}
	return nil
}

// corrupt is the error for a store file that cannot be read.
func corrupt(path string, cause error) error {
	return fmt.Errorf("%w: %s: %v; move the file away (crier then starts with an empty store) or put back a copy from a backup",
		ErrCorrupt, path, cause)
}

// check reads every page of every namespace once, so that a damaged file
// fails Open instead of a transaction later, and returns the namespaces.
func (s *boltStore) check() (names []string, err error) {
	var btx *bolt.Tx
	defer func() {
		if r := recover(); r != nil {
			names, err = nil, corrupt(s.path, fmt.Errorf("reading it failed: %v", r))
		}
		if btx != nil {
			_ = btx.Rollback()
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	btx, err = s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", s.path, err)
	}
	var sink byte
	err = btx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if b == nil {
			return corrupt(s.path, fmt.Errorf("top-level key %q is not a namespace", name))
		}
		if _, err := readMeta(b); err != nil {
			return corrupt(s.path, fmt.Errorf("namespace %q: %v", name, err))
		}
		for _, sub := range [][]byte{bucketData, bucketIndex, bucketExpires} {
			sb := b.Bucket(sub)
			if sb == nil {
				return corrupt(s.path, fmt.Errorf("namespace %q has no %s bucket", name, sub))
			}
			c := sb.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				switch {
				case bytes.Equal(sub, bucketIndex) && len(k) <= 8:
					return corrupt(s.path, fmt.Errorf("namespace %q: expiry index key %x is too short", name, k))
				case bytes.Equal(sub, bucketExpires) && len(v) != 8:
					return corrupt(s.path, fmt.Errorf("namespace %q: expiry of %q is %d bytes, not 8", name, k, len(v)))
				}
				// Touch the value's last byte: a value on overflow pages
				// past the end of the file faults here, not later.
				if len(v) > 0 {
					sink ^= v[len(v)-1]
				}
			}
		}
		names = append(names, string(name))
		return nil
	})
	_ = sink
	return names, err
}

// makePrivate gives an existing store file that others may read mode 0o600.
func (s *boltStore) makePrivate() {
	fi, err := os.Stat(s.path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	if err := os.Chmod(s.path, 0o600); err != nil {
		s.log.Warn("state store file is open to other users", "path", s.path, "mode", fi.Mode().Perm(), "err", err)
		return
	}
	s.log.Warn("state store file was open to other users; made it 0600", "path", s.path, "mode", fi.Mode().Perm())
}

// Close stops the expiry timer, waits for the expiry functions and the
// transactions under way, then closes the file.
func (s *boltStore) Close() error {
	if !s.shut() {
		return nil
	}
	// The expiry functions first: they may still be inside an Update
	// (joined to ops before closed was set), which must finish on an open
	// file; once they are done no new call can join ops.
	s.exp.stop()
	s.ops.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close %s: %w", s.path, err)
	}
	return nil
}

// Namespace opens or creates the namespace name; see Store.
func (s *boltStore) Namespace(name string, schema int) (Namespace, error) {
	if err := checkNamespace(name, schema); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	bname := []byte(name)
	stored, found := 0, false
	err := s.db.View(func(btx *bolt.Tx) error {
		b := btx.Bucket(bname)
		if b == nil {
			return nil
		}
		m, err := readMeta(b)
		stored, found = m.Schema, true
		return err
	})
	if err == nil && !found {
		// Created in its own Update, which checks again: another call
		// may have created it between the View and here.
		err = s.db.Update(func(btx *bolt.Tx) error {
			if b := btx.Bucket(bname); b != nil {
				m, err := readMeta(b)
				stored = m.Schema
				return err
			}
			stored = schema
			return createNamespace(btx, bname, schema)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("state: namespace %q in %s: %w", name, s.path, err)
	}
	if stored > schema {
		return nil, fmt.Errorf("%w: namespace %q in %s is at schema %d, this crier knows up to %d: run a crier as new as the one that wrote it",
			ErrSchemaTooNew, name, s.path, stored, schema)
	}
	n := &boltNamespace{s: s, name: name, bname: bname}
	n.schema.Store(int64(stored))
	return n, nil
}

// checkNamespace validates a namespace name and schema version.
func checkNamespace(name string, schema int) error {
	if name == "" || len(name) > MaxNamespaceBytes {
		return fmt.Errorf("%w: %q: a name is 1 to %d bytes", ErrBadNamespace, name, MaxNamespaceBytes)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: a name has only letters, digits, '.', '_' and '-'", ErrBadNamespace, name)
		}
	}
	if schema < 0 {
		return fmt.Errorf("%w: %q: schema version %d is negative", ErrBadNamespace, name, schema)
	}
	return nil
}

// createNamespace makes a namespace's bucket with its sub-buckets and meta.
func createNamespace(btx *bolt.Tx, bname []byte, schema int) error {
	b, err := btx.CreateBucket(bname)
	if err != nil {
		return err
	}
	for _, sub := range [][]byte{bucketData, bucketIndex, bucketExpires} {
		if _, err := b.CreateBucket(sub); err != nil {
			return err
		}
	}
	return writeMeta(b, meta{Schema: schema})
}

// readMeta reads a namespace's meta record.
func readMeta(b *bolt.Bucket) (meta, error) {
	var m meta
	raw := b.Get(keyMeta)
	if raw == nil {
		return m, errors.New("no meta record")
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("meta record %q: %v", raw, err)
	}
	if m.Schema < 0 {
		return m, fmt.Errorf("meta record %q: negative schema", raw)
	}
	return m, nil
}

// writeMeta writes a namespace's meta record.
func writeMeta(b *bolt.Bucket, m meta) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(keyMeta, raw)
}

// encodeTime is the 8-byte form of an expiry time whose byte order is the
// time order: nanoseconds since 1970 with the sign bit flipped, big-endian.
func encodeTime(at time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(at.UnixNano())^(1<<63))
	return b[:]
}

// decodeTime reverses encodeTime.
func decodeTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63)))
}

// indexKey is the expiry index key of key expiring at enc (encodeTime).
func indexKey(enc, key []byte) []byte {
	k := make([]byte, 0, len(enc)+len(key))
	return append(append(k, enc...), key...)
}

// checkKey validates a key.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrBadKey)
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("%w: %d bytes, over %d", ErrBadKey, len(key), MaxKeyBytes)
	}
	return nil
}

// Namespaces lists the namespaces (Lister).
func (s *boltStore) Namespaces() ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	var names []string
	err := s.db.View(func(btx *bolt.Tx) error {
		return btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: list namespaces of %s: %w", s.path, err)
	}
	slices.Sort(names)
	return names, nil
}
