package state

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// KVOptions tunes OpenKV. The zero value is ready to use.
type KVOptions struct {
	// Logger receives the line that says the store is open and warnings
	// about expiry collection; nil discards them.
	Logger *slog.Logger
	// Now is the clock that expiries are compared with; nil is time.Now.
	Now func() time.Time
	// Replicas is the bucket's number of replicas when OpenKV creates it
	// (3 on a 3-node cluster); 0 means 1. An existing bucket keeps its own.
	Replicas int
	// Timeout bounds each request to NATS; 0 means 5 seconds.
	Timeout time.Duration
	// Retries is how many more times Update runs its function after a
	// conflicting write; 0 means 10.
	Retries int
	// SweepInterval is the longest the expiry collector waits between two
	// looks at a namespace's expiry index, which is how late an expiry set
	// by another instance can fire; 0 means one second.
	SweepInterval time.Duration
}

// Layout of the bucket. Every key of a namespace starts with the escaped
// namespace name (escape), then:
//
//	<ns>.m                the meta record (JSON, the schema version)
//	<ns>.d.<key>          a value: envelope (expiry) + the value
//	<ns>.e.<time>.<key>   an expiry index entry, empty; time is 16 hex
//	                      digits of encodeTime, so that it sorts by time
const (
	kvMeta  = ".m"
	kvData  = ".d."
	kvIndex = ".e."
	// kvMaxBatch is the most messages one commit may hold: nats-server's
	// atomic batch limit (1000) with room for the index entries.
	kvMaxBatch = 1000
	// kvMarkerTTL is how long a delete marker stays in the bucket: without
	// one, every key ever deleted would leave a message for good.
	kvMarkerTTL = time.Hour
)

// Headers of the KV and JetStream protocols that commits set.
const (
	hdrKVOp        = "KV-Operation"
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// JetStream API error codes that mean a conditional write lost the race.
const (
	jsWrongLastSeq         = 10071
	jsWrongLastSeqConstant = 10164
	jsNoMessageFound       = 10037
)

// errConflict is a commit refused because a key changed since it was read.
var errConflict = errors.New("state: conflicting write")

// isConflict tells whether err is a commit refused for a revision.
func isConflict(err error) bool { return errors.Is(err, errConflict) }

// kvStore is the NATS JetStream KV backend of Store.
type kvStore struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	bucket  string
	stream  string // KV_<bucket>
	prefix  string // $KV.<bucket>.
	api     string // the JetStream API prefix: $JS.API. unless js has a domain or prefix
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	retries int
	sweep   *kvSweeper

	// locks serialises the Updates of one namespace in this process,
	// which saves conflicts between local writers; other instances are
	// kept apart by the revisions alone.
	locksMu sync.Mutex
	locks   map[string]*sync.Mutex

	fencing kvFencing // see Fence

	life // open or closed, and the calls under way
}

// OpenKV opens the state store kept in the JetStream KV bucket named
// bucket, creating the bucket (opts.Replicas replicas, file storage) when it
// is missing. The bucket's stream is given atomic batch publishing, which
// commits use, and per-message TTLs, which delete markers use; a bucket
// whose keys would vanish on their own (a TTL or a history limit of bytes)
// is refused with ErrBadBucket. Several stores, in one process or many, may
// share a bucket: see the package documentation for what Update
// guarantees then. The store does not own js's connection: Close leaves it
// open.
func OpenKV(js jetstream.JetStream, bucket string, opts KVOptions) (Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Retries <= 0 {
		opts.Retries = 10
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "crier state store",
			History:     1,
			Replicas:    opts.Replicas,
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("state: bucket %q: %w", bucket, err)
	}
	s := &kvStore{
		js: js, kv: kv, bucket: bucket,
		stream:  "KV_" + bucket,
		prefix:  "$KV." + bucket + ".",
		api:     apiPrefix(js.Options()),
		log:     opts.Logger,
		now:     opts.Now,
		timeout: opts.Timeout,
		retries: opts.Retries,
		locks:   map[string]*sync.Mutex{},
	}
	replicas, err := s.prepareStream(ctx)
	if err != nil {
		return nil, err
	}
	s.sweep = newKVSweeper(s, opts.SweepInterval)
	s.log.Info("state store open", "bucket", bucket, "replicas", replicas)
	return s, nil
}

// prepareStream checks the bucket's stream and turns on what commits need.
func (s *kvStore) prepareStream(ctx context.Context) (int, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return 0, fmt.Errorf("state: bucket %q: %w", s.bucket, err)
	}
	cfg := st.CachedInfo().Config
	switch {
	case cfg.MaxAge != 0:
		return 0, fmt.Errorf("%w: bucket %q has a TTL of %v: state would vanish after it", ErrBadBucket, s.bucket, cfg.MaxAge)
	case cfg.MaxBytes > 0 || cfg.MaxMsgs > 0:
		return 0, fmt.Errorf("%w: bucket %q has a size limit: state would be dropped at it", ErrBadBucket, s.bucket)
	case cfg.Mirror != nil || len(cfg.Sources) > 0:
		return 0, fmt.Errorf("%w: bucket %q is a mirror or has sources: it cannot take commits", ErrBadBucket, s.bucket)
	}
	if !cfg.AllowAtomicPublish || !cfg.AllowMsgTTL {
		cfg.AllowAtomicPublish = true
		cfg.AllowMsgTTL = true
		if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
			return 0, fmt.Errorf("state: bucket %q: turning on atomic batches and message TTLs (nats-server 2.12 or newer): %w", s.bucket, err)
		}
	}
	return cfg.Replicas, nil
}

// Close stops the expiry collector and waits for the calls under way. The
// NATS connection stays open.
func (s *kvStore) Close() error {
	if !s.shut() {
		return nil
	}
	// The collector first: its expiry function may be inside a
	// transaction that joined ops before closed was set.
	s.sweep.stop()
	s.ops.Wait()
	return nil
}

// lock returns the Update lock of namespace name.
func (s *kvStore) lock(name string) *sync.Mutex {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	l := s.locks[name]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[name] = l
	}
	return l
}

// ctx is the context of one request.
func (s *kvStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// Namespace opens or creates the namespace name; see Store.
func (s *kvStore) Namespace(name string, schema int) (Namespace, error) {
	if err := checkNamespace(name, schema); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	n := &kvNamespace{s: s, name: name, ens: escape(name)}
	// Two tries: a Create that lost the race reads the winner's record.
	for range 2 {
		m, rev, found, err := n.readMeta()
		if err != nil {
			return nil, err
		}
		if found {
			if m.Schema > schema {
				return nil, fmt.Errorf("%w: namespace %q in bucket %q is at schema %d, this crier knows up to %d: run a crier as new as the one that wrote it",
					ErrSchemaTooNew, name, s.bucket, m.Schema, schema)
			}
			n.schema.Store(int64(m.Schema))
			return n, nil
		}
		raw, _ := json.Marshal(meta{Schema: schema})
		err = s.commit([]*nats.Msg{s.putMsg(n.ens+kvMeta, raw, &rev)})
		if err == nil {
			n.schema.Store(int64(schema))
			return n, nil
		}
		if !errors.Is(err, errConflict) {
			return nil, fmt.Errorf("state: namespace %q in bucket %q: %w", name, s.bucket, err)
		}
	}
	return nil, fmt.Errorf("state: namespace %q in bucket %q: %w", name, s.bucket, ErrConflict)
}

// rawEntry is the last message of one key, as the stream leader has it.
type rawEntry struct {
	rev     uint64 // its sequence; 0 when the key has none
	deleted bool   // a delete or purge marker
	data    []byte
}

// get reads the last message of the KV key key from the stream's leader
// (not a direct get, which a replica that lags may answer), so that a read
// after a commit sees it.
func (s *kvStore) get(key string) (rawEntry, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	req, _ := json.Marshal(map[string]string{"last_by_subj": s.prefix + key})
	msg, err := s.js.Conn().RequestWithContext(ctx, s.api+"STREAM.MSG.GET."+s.stream, req)
	if err != nil {
		return rawEntry{}, fmt.Errorf("state: read %q: %w", key, err)
	}
	var resp struct {
		Error   *apiError `json:"error"`
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return rawEntry{}, fmt.Errorf("state: read %q: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == jsNoMessageFound:
		return rawEntry{}, nil
	case resp.Error != nil:
		return rawEntry{}, fmt.Errorf("state: read %q: %w", key, resp.Error)
	case resp.Message == nil:
		return rawEntry{}, fmt.Errorf("state: read %q: empty answer", key)
	}
	e := rawEntry{rev: resp.Message.Seq, data: resp.Message.Data}
	if len(resp.Message.Hdrs) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Hdrs)
		if err != nil {
			return rawEntry{}, fmt.Errorf("state: read %q: headers: %w", key, err)
		}
		op := h.Get(hdrKVOp)
		e.deleted = op == "DEL" || op == "PURGE" || h.Get(jetstream.MarkerReasonHeader) != ""
	}
	return e, nil
}

// apiPrefix is the JetStream API prefix that js's options select, as
// nats.go builds it.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return "$JS.API."
}

// apiError is a JetStream API error.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (JetStream error %d)", e.Description, e.ErrCode)
}

// putMsg is a message setting KV key key to data, on the expected revision
// when rev is not nil.
func (s *kvStore) putMsg(key string, data []byte, rev *uint64) *nats.Msg {
	m := nats.NewMsg(s.prefix + key)
	m.Data = data
	if rev != nil {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(*rev, 10))
	}
	return m
}

// purgeMsg is a message purging KV key key (on the expected revision when
// rev is not nil), its marker kept for kvMarkerTTL.
func (s *kvStore) purgeMsg(key string, rev *uint64) *nats.Msg {
	m := s.putMsg(key, nil, rev)
	m.Header.Set(hdrKVOp, "PURGE")
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Header.Set(jetstream.MsgTTLHeader, kvMarkerTTL.String())
	return m
}

// commit publishes msgs as one JetStream atomic batch: the stream stores
// all of them or none, and none when one's expected revision is not the
// key's. A refusal for a revision is errConflict. A commit whose answer did
// not come is reported as such: it may have happened. While the store is
// fenced (Fence), the batch also checks the fence, and a commit refused
// for it is ErrFenced.
func (s *kvStore) commit(msgs []*nats.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	if f := s.fence(); f != nil {
		return s.fencedCommit(f, msgs)
	}
	_, err := s.commitSeq(msgs)
	return err
}

// commitSeq is commit without the fence; it returns the sequence of the
// batch's last message.
func (s *kvStore) commitSeq(msgs []*nats.Msg) (uint64, error) {
	if len(msgs) > kvMaxBatch {
		return 0, fmt.Errorf("%w: a transaction writes %d keys and expiry entries, over the %d one commit can hold",
			ErrTooLarge, len(msgs), kvMaxBatch)
	}
	nc := s.js.Conn()
	id := nuid.Next()
	for i, m := range msgs[:len(msgs)-1] {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if err := nc.PublishMsg(m); err != nil {
			return 0, fmt.Errorf("state: commit: %w", err)
		}
	}
	last := msgs[len(msgs)-1]
	last.Header.Set(hdrBatchID, id)
	last.Header.Set(hdrBatchSeq, strconv.Itoa(len(msgs)))
	last.Header.Set(hdrBatchCommit, "1")
	ctx, cancel := s.ctx()
	defer cancel()
	reply, err := nc.RequestMsgWithContext(ctx, last)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return 0, fmt.Errorf("%w: no answer in %v", ErrUnknownOutcome, s.timeout)
	case err != nil:
		return 0, fmt.Errorf("state: commit: %w", err)
	}
	var ack struct {
		Error *apiError `json:"error"`
		Seq   uint64    `json:"seq"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return 0, fmt.Errorf("%w: answer %q: %v", ErrUnknownOutcome, reply.Data, err)
	}
	if ack.Error != nil {
		if ack.Error.ErrCode == jsWrongLastSeq || ack.Error.ErrCode == jsWrongLastSeqConstant {
			return 0, fmt.Errorf("%w: %w", errConflict, ack.Error)
		}
		return 0, fmt.Errorf("state: commit: %w", ack.Error)
	}
	return ack.Seq, nil
}

// kvNamespace is a handle on one namespace of a kvStore.
type kvNamespace struct {
	s    *kvStore
	name string
	ens  string // escaped name, the prefix of its keys
	// schema is the last version read or written through this handle.
	schema atomic.Int64
}

// Name is the namespace's name.
func (n *kvNamespace) Name() string { return n.name }

// readMeta reads the namespace's meta record and its revision.
func (n *kvNamespace) readMeta() (m meta, rev uint64, found bool, err error) {
	e, err := n.s.get(n.ens + kvMeta)
	if err != nil {
		return m, 0, false, err
	}
	if e.rev == 0 || e.deleted {
		return m, e.rev, false, nil
	}
	if err := json.Unmarshal(e.data, &m); err != nil || m.Schema < 0 {
		return m, 0, false, fmt.Errorf("%w: bucket %q: meta record of %q is %q", ErrCorrupt, n.s.bucket, n.name, e.data)
	}
	return m, e.rev, true, nil
}

// Schema reads the schema version stored in the bucket.
func (n *kvNamespace) Schema() int {
	if err := n.s.enter(); err != nil {
		return int(n.schema.Load())
	}
	defer n.s.ops.Done()
	if m, _, found, err := n.readMeta(); err == nil && found {
		n.schema.Store(int64(m.Schema))
	}
	return int(n.schema.Load())
}

// SetSchema records schema version v.
func (n *kvNamespace) SetSchema(v int) error {
	if v < 0 {
		return fmt.Errorf("%w: %q: schema version %d is negative", ErrBadNamespace, n.name, v)
	}
	if err := n.s.enter(); err != nil {
		return err
	}
	defer n.s.ops.Done()
	raw, _ := json.Marshal(meta{Schema: v})
	if err := n.s.commit([]*nats.Msg{n.s.putMsg(n.ens+kvMeta, raw, nil)}); err != nil {
		return fmt.Errorf("state: set schema of %q: %w", n.name, err)
	}
	n.schema.Store(int64(v))
	return nil
}

// View runs fn with reads only.
func (n *kvNamespace) View(fn func(Tx) error) error {
	if err := n.s.enter(); err != nil {
		return err
	}
	defer n.s.ops.Done()
	t := n.newTx(false)
	err := call(fn, t)
	t.done = true
	if t.err != nil {
		return t.err
	}
	return err
}

// Update runs fn and commits its writes, running it again (up to
// KVOptions.Retries more times) when a key it read or wrote changed
// before the commit.
func (n *kvNamespace) Update(fn func(Tx) error) error {
	if err := n.s.enter(); err != nil {
		return err
	}
	defer n.s.ops.Done()
	l := n.s.lock(n.name)
	l.Lock()
	defer l.Unlock()
	for attempt := 0; ; attempt++ {
		t := n.newTx(true)
		err := call(fn, t)
		t.done = true
		if t.err != nil {
			return t.err
		}
		if err != nil {
			return err
		}
		err = t.commit()
		if !errors.Is(err, errConflict) {
			if err == nil && t.expiryAdded {
				n.s.sweep.poke()
			}
			return err
		}
		if attempt >= n.s.retries {
			return fmt.Errorf("%w: namespace %q, %d tries: %v", ErrConflict, n.name, attempt+1, err)
		}
		// A short random pause, growing with the tries, so that two
		// writers that keep colliding fall out of step.
		time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6))))
	}
}

// OnExpire sets the namespace's expiry function; see Namespace.
func (n *kvNamespace) OnExpire(fn func(key string, value []byte)) {
	n.s.sweep.handle(n, fn)
}

func (n *kvNamespace) newTx(writable bool) *kvTx {
	return &kvTx{n: n, writable: writable, now: n.s.now(), reads: map[string]kvRead{}, writes: map[string]kvWrite{}}
}

// kvRead is what a transaction saw of a key.
type kvRead struct {
	rev     uint64    // the revision to expect at the commit
	present bool      // a value is stored, live or expired
	live    bool      // it exists and has not expired
	value   []byte    // its value when live
	at      time.Time // its expiry, zero when none (even when not live)
}

// kvWrite is a buffered write.
type kvWrite struct {
	del   bool
	value []byte
	at    time.Time
}

// kvTx is a transaction on one namespace of a kvStore. Reads go to NATS at
// the first touch of a key and are kept, so that a key reads the same all
// through; writes are buffered until the commit.
type kvTx struct {
	n           *kvNamespace
	writable    bool
	now         time.Time
	reads       map[string]kvRead
	writes      map[string]kvWrite
	wver        int // counts writes, so that ForEach sees fn's
	done        bool
	err         error // the first failed read: View and Update return it
	expiryAdded bool
}

// read returns what the transaction sees of key in the bucket (not its own
// writes), reading it on the first call.
func (t *kvTx) read(key string) (kvRead, error) {
	if r, ok := t.reads[key]; ok {
		return r, nil
	}
	e, err := t.n.s.get(t.n.ens + kvData + escape(key))
	if err != nil {
		return kvRead{}, err
	}
	r, err := t.decode(key, e.rev, e.deleted, e.data)
	if err != nil {
		return kvRead{}, err
	}
	t.reads[key] = r
	return r, nil
}

// decode makes a kvRead of a key's last message.
func (t *kvTx) decode(key string, rev uint64, deleted bool, data []byte) (kvRead, error) {
	r := kvRead{rev: rev}
	if rev == 0 || deleted {
		return r, nil
	}
	v, at, err := unwrapValue(data)
	if err != nil {
		return kvRead{}, fmt.Errorf("%w: bucket %q: key %q of %q: %v", ErrCorrupt, t.n.s.bucket, key, t.n.name, err)
	}
	r.value, r.at, r.present = v, at, true
	r.live = at.IsZero() || at.After(t.now)
	return r, nil
}

// fail records the first failed read.
func (t *kvTx) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// Get returns the value of key when it exists and has not expired.
func (t *kvTx) Get(key string) ([]byte, bool) {
	if t.done || checkKey(key) != nil {
		return nil, false
	}
	if w, ok := t.writes[key]; ok {
		return w.value, !w.del
	}
	r, err := t.read(key)
	if err != nil {
		t.fail(err)
		return nil, false
	}
	return r.value, r.live
}

// canWrite checks that a write may happen, and its key.
func (t *kvTx) canWrite(key string) error {
	switch {
	case t.done:
		return ErrTxDone
	case !t.writable:
		return ErrReadOnly
	}
	return checkKey(key)
}

// Put sets key to a copy of value, with no expiry.
func (t *kvTx) Put(key string, value []byte) error {
	if err := t.canWrite(key); err != nil {
		return err
	}
	t.writes[key] = kvWrite{value: append([]byte{}, value...)}
	t.wver++
	return nil
}

// PutExpiring sets key to a copy of value until at.
func (t *kvTx) PutExpiring(key string, value []byte, at time.Time) error {
	if err := t.canWrite(key); err != nil {
		return err
	}
	if at.Before(minExpiry) || at.After(maxExpiry) {
		return fmt.Errorf("%w: %v for %q", ErrBadExpiry, at, key)
	}
	t.writes[key] = kvWrite{value: append([]byte{}, value...), at: time.Unix(0, at.UnixNano())}
	t.wver++
	return nil
}

// Delete removes key and its expiry.
func (t *kvTx) Delete(key string) error {
	if err := t.canWrite(key); err != nil {
		return err
	}
	t.writes[key] = kvWrite{del: true}
	t.wver++
	return nil
}

// Expiry returns when key expires.
func (t *kvTx) Expiry(key string) (time.Time, bool) {
	if t.done || checkKey(key) != nil {
		return time.Time{}, false
	}
	if w, ok := t.writes[key]; ok {
		return w.at, !w.del && !w.at.IsZero()
	}
	r, err := t.read(key)
	if err != nil {
		t.fail(err)
		return time.Time{}, false
	}
	return r.at, r.live && !r.at.IsZero()
}

// ForEach calls fn for each live key with the prefix, in key order: the
// keys of the namespace when ForEach starts, with the transaction's own
// writes as they happen (a key fn adds after the current one is visited,
// one it deletes is skipped), as the bbolt backend does.
func (t *kvTx) ForEach(prefix string, fn func(key string, value []byte) error) error {
	if t.done {
		return ErrTxDone
	}
	if err := t.scan(prefix); err != nil {
		t.fail(err)
		return err
	}
	keys, ver := t.keys(prefix), t.wver
	for i := 0; i < len(keys); i++ {
		k := keys[i]
		v, ok := t.Get(k)
		if !ok {
			continue
		}
		if err := fn(k, v); err != nil {
			return err
		}
		if t.wver != ver {
			// fn wrote: list again and go on after k.
			keys, ver = t.keys(prefix), t.wver
			j, found := slices.BinarySearch(keys, k)
			if !found {
				j--
			}
			i = j
		}
	}
	return nil
}

// keys lists, sorted, the keys with the prefix that the transaction read
// or wrote and that are live.
func (t *kvTx) keys(prefix string) []string {
	var keys []string
	for k, r := range t.reads {
		if w, written := t.writes[k]; (written && !w.del || !written && r.live) && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	for k, w := range t.writes {
		if _, read := t.reads[k]; !read && !w.del && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// scan reads every key of the namespace (one ordered consumer) into reads,
// keeping what was read before: a key reads the same all through.
func (t *kvTx) scan(prefix string) error {
	ctx, cancel := t.n.s.ctx()
	defer cancel()
	w, err := t.n.s.kv.Watch(ctx, t.n.ens+kvData+">")
	if err != nil {
		return fmt.Errorf("state: list %q: %w", t.n.name, err)
	}
	defer func() { _ = w.Stop() }()
	cut := len(t.n.ens + kvData)
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return nil
			}
			key, err := unescape(e.Key()[cut:])
			if err != nil {
				t.n.s.log.Warn("state: skipped a key that is not crier's", "bucket", t.n.s.bucket, "key", e.Key())
				continue
			}
			if _, seen := t.reads[key]; seen || !strings.HasPrefix(key, prefix) {
				continue
			}
			r, err := t.decode(key, e.Revision(), e.Operation() != jetstream.KeyValuePut, e.Value())
			if err != nil {
				return err
			}
			t.reads[key] = r
		case <-ctx.Done():
			return fmt.Errorf("state: list %q: %w", t.n.name, ctx.Err())
		}
	}
}

// commit publishes the buffered writes as one atomic batch: every data key
// written is expected at the revision read (read now for a blind write),
// and the expiry index entries are added and removed with them.
func (t *kvTx) commit() error {
	if len(t.writes) == 0 {
		return nil
	}
	if len(t.writes) > kvMaxBatch {
		return fmt.Errorf("%w: a transaction writes %d keys, over the %d one commit can hold", ErrTooLarge, len(t.writes), kvMaxBatch)
	}
	s := t.n.s
	keys := make([]string, 0, len(t.writes))
	for k := range t.writes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var msgs []*nats.Msg
	for _, k := range keys {
		w := t.writes[k]
		r, err := t.read(k)
		if err != nil {
			return err
		}
		dk := t.n.ens + kvData + escape(k)
		rev := r.rev
		switch {
		case w.del && !r.present:
			// Nothing to delete.
			continue
		case w.del:
			msgs = append(msgs, s.purgeMsg(dk, &rev))
		default:
			msgs = append(msgs, s.putMsg(dk, wrapValue(w.value, w.at), &rev))
		}
		if !r.at.IsZero() && !r.at.Equal(w.at) {
			msgs = append(msgs, s.purgeMsg(t.n.indexKey(r.at, k), nil))
		}
		if !w.del && !w.at.IsZero() && !w.at.Equal(r.at) {
			msgs = append(msgs, s.putMsg(t.n.indexKey(w.at, k), nil, nil))
			t.expiryAdded = true
		}
	}
	return s.commit(msgs)
}

// indexKey is the KV key of key's expiry index entry for at.
func (n *kvNamespace) indexKey(at time.Time, key string) string {
	return n.ens + kvIndex + fmt.Sprintf("%016x", binary.BigEndian.Uint64(encodeTime(at))) + "." + escape(key)
}

// wrapValue is the stored form of a value: a flag byte (0: no expiry, 1:
// an expiry follows as 8 bytes of encodeTime) and the value.
func wrapValue(v []byte, at time.Time) []byte {
	if at.IsZero() {
		return append([]byte{0}, v...)
	}
	b := append([]byte{1}, encodeTime(at)...)
	return append(b, v...)
}

// unwrapValue reverses wrapValue.
func unwrapValue(b []byte) ([]byte, time.Time, error) {
	switch {
	case len(b) >= 1 && b[0] == 0:
		return b[1:], time.Time{}, nil
	case len(b) >= 9 && b[0] == 1:
		return b[9:], decodeTime(b[1:9]), nil
	}
	return nil, time.Time{}, fmt.Errorf("value of %d bytes is not in crier's format", len(b))
}

// escape maps s into one token of KV's key alphabet: letters, digits, '-',
// '_' and '/' stay, every other byte is '=' and two hex digits. The code is
// prefix-free, so a key has a prefix exactly when its escape has the
// prefix's escape.
func escape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '/' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

// unescape reverses escape.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// The KV backend implements the interfaces.
var (
	_ Store     = (*kvStore)(nil)
	_ Namespace = (*kvNamespace)(nil)
	_ Tx        = (*kvTx)(nil)
)

// Namespaces lists the namespaces: the keys of their meta records
// (Lister).
func (s *kvStore) Namespaces() ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	ctx, cancel := s.ctx()
	defer cancel()
	lister, err := s.kv.ListKeysFiltered(ctx, "*"+kvMeta)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: list namespaces of bucket %q: %w", s.bucket, err)
	}
	var names []string
	for k := range lister.Keys() {
		name, err := unescape(strings.TrimSuffix(k, kvMeta))
		if err != nil {
			return nil, fmt.Errorf("%w: bucket %q: meta key %q: %v", ErrCorrupt, s.bucket, k, err)
		}
		names = append(names, name)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("state: list namespaces of bucket %q: %w", s.bucket, err)
	}
	slices.Sort(names)
	return names, nil
}
