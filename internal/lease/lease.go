package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of the lease package.
var (
	// ErrBadOptions is returned by New for a lease duration, renewal
	// interval or margin that cannot work.
	ErrBadOptions = errors.New("lease: bad options")
	// ErrBadBucket is returned for a bucket that cannot hold a lease:
	// without per-key TTLs (limit markers), or with a bucket TTL shorter
	// than the lease.
	ErrBadBucket = errors.New("lease: bucket unfit for a lease")
	// ErrRenewTimeout is the reason given when a leader could not renew
	// before its own deadline and stepped down.
	ErrRenewTimeout = errors.New("lease: could not renew in time")
	// ErrTaken is the reason given when a renewal found the lease key
	// changed: another instance holds it.
	ErrTaken = errors.New("lease: lease taken by another instance")
	// ErrFenced is returned by Fence for a token older than one already
	// seen: the caller's leadership is stale.
	ErrFenced = errors.New("lease: fenced: a newer leader has acted")
)

// Defaults of Options.
const (
	// DefaultTTL is the lease duration.
	DefaultTTL = 5 * time.Second
	// DefaultKey is the lease's key in the bucket.
	DefaultKey = "leader"
	// markerTTL is how long the bucket keeps the marker of an expired or
	// deleted key (the bucket's LimitMarkerTTL when Bucket creates it).
	markerTTL = time.Minute
	// requestTimeout bounds a request that no deadline bounds sooner.
	requestTimeout = 5 * time.Second
)

// Options tunes New. The zero value is ready to use.
type Options struct {
	// Key is the lease's key in the bucket; empty means DefaultKey.
	Key string
	// ID names this instance in the lease's value (what Current
	// reports); empty means host name, process id and a random suffix.
	ID string
	// TTL is how long the lease lives on the server after each renewal:
	// whole seconds (nats-server counts message TTLs in seconds), at
	// least 2s; 0 means DefaultTTL.
	TTL time.Duration
	// Renew is the interval between renewals; 0 means TTL/3.
	Renew time.Duration
	// Margin is how long before the lease can expire the leader gives up
	// when it could not renew: it leads until the start of its last
	// successful renewal + TTL - Margin, by its own clock. 0 means TTL/5.
	// Renew + Margin must be under TTL.
	Margin time.Duration
	// OnChange is called for each change of leadership, in order, on a
	// goroutine of the lease's (so that a slow function does not delay
	// renewals). Leading() is the authority at any instant; OnChange
	// tells when to start and stop.
	OnChange func(Change)
	// OnRenew, when set, is called after each renewal with how long it
	// took and its error (nil when it succeeded), on the renewing
	// goroutine: it must not block.
	OnRenew func(took time.Duration, err error)
	// Logger receives leadership changes and renewal failures; nil
	// discards them.
	Logger *slog.Logger
}

// Change is a change of this instance's leadership.
type Change struct {
	// Leading tells whether this instance now leads.
	Leading bool
	// Token is the fencing token of the term that began or ended.
	Token uint64
	// At is when the change took effect by this instance's clock: when
	// the lease was won, or the end of the claim (its deadline when the
	// lease ran out, the moment it was given up otherwise).
	At time.Time
	// Err is why leadership ended: ErrRenewTimeout, ErrTaken, the reason
	// given to StepDown, or nil when Run returned (the lease was given up).
	Err error
}

// Holder is the lease as the bucket has it.
type Holder struct {
	// ID names the leading instance.
	ID string
	// Token is its term's fencing token.
	Token uint64
	// Since is when, by its clock, it won the lease.
	Since time.Time
	// Revision is the key's revision (it changes at every renewal).
	Revision uint64
}

// value is the lease key's JSON value.
type value struct {
	ID    string    `json:"id"`
	Term  uint64    `json:"term,omitempty"` // 0 in the write that won the term: its own revision
	Since time.Time `json:"since"`
}

// Lease is one instance's part in an election: Run campaigns for the lease
// and, once it holds it, renews it until it loses it or Run returns.
type Lease struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	key     string
	subject string
	id      string
	ttl     time.Duration
	renew   time.Duration
	margin  time.Duration
	log     *slog.Logger

	onChange func(Change)
	onRenew  func(time.Duration, error)
	// queue holds the changes OnChange has yet to see; a channel of
	// fixed size could block the renewals behind a slow OnChange.
	qmu    sync.Mutex
	queue  []Change
	signal chan struct{} // capacity 1: a change was queued

	mu       sync.Mutex
	token    uint64    // the term's token; 0 when not leading
	rev      uint64    // the key's revision as last written by this instance
	deadline time.Time // leadership ends then, by this clock (monotonic)
	since    time.Time

	// now is the clock: time.Now, whose readings carry the monotonic
	// clock that every comparison here uses (a test skews it).
	now func() time.Time

	// yield wakes hold when StepDown ended the term (capacity 1).
	yield chan struct{}
}

// New prepares a lease on kv (a bucket made by Bucket, or one with the same
// settings) through js. It checks the options and the bucket's settings.
func New(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, opts Options) (*Lease, error) {
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if opts.ID == "" {
		host, _ := os.Hostname()
		opts.ID = host + "/" + strconv.Itoa(os.Getpid()) + "/" + strconv.FormatUint(rand.Uint64()%(36*36*36*36), 36)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if err := CheckTTL(opts.TTL); err != nil {
		return nil, err
	}
	if opts.Renew == 0 {
		opts.Renew = opts.TTL / 3
	}
	if opts.Margin == 0 {
		opts.Margin = opts.TTL / 5
	}
	if opts.Renew <= 0 || opts.Margin <= 0 || opts.Renew+opts.Margin >= opts.TTL {
		return nil, fmt.Errorf("%w: renew %v + margin %v must be under the lease %v", ErrBadOptions, opts.Renew, opts.Margin, opts.TTL)
	}
	if !validKey(opts.Key) {
		return nil, fmt.Errorf("%w: key %q is not a valid KV key", ErrBadOptions, opts.Key)
	}
	if err := checkBucket(ctx, kv, opts.TTL); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Lease{
		js: js, kv: kv, key: opts.Key,
		subject:  "$KV." + kv.Bucket() + "." + opts.Key,
		id:       opts.ID,
		ttl:      opts.TTL,
		renew:    opts.Renew,
		margin:   opts.Margin,
		log:      opts.Logger.With("lease", kv.Bucket()+"/"+opts.Key, "id", opts.ID),
		onChange: opts.OnChange,
		onRenew:  opts.OnRenew,
		yield:    make(chan struct{}, 1),
		now:      time.Now,
	}
	return l, nil
}

// CheckTTL reports whether d can be a lease duration: whole seconds, at
// least two.
func CheckTTL(d time.Duration) error {
	if d < 2*time.Second || d%time.Second != 0 {
		return fmt.Errorf("%w: lease %v must be whole seconds, at least 2s (NATS counts key TTLs in seconds)", ErrBadOptions, d)
	}
	return nil
}

// ID is this instance's name in the lease.
func (l *Lease) ID() string { return l.id }

// TTL is the lease duration.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Leading returns the fencing token of the current term and true while this
// instance leads by its own clock: it won the lease and its last renewal
// started less than TTL - Margin ago. It is the check to make before each
// side effect only the leader may cause.
func (l *Lease) Leading() (token uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token == 0 || !l.now().Before(l.deadline) {
		return 0, false
	}
	return l.token, true
}

// Token is the fencing token of the current term, 0 when this instance does
// not lead. Tokens are JetStream sequence numbers: a later term's is
// greater than every earlier one's.
func (l *Lease) Token() uint64 {
	t, _ := l.Leading()
	return t
}

// Current reads who holds the lease; ok is false when nobody does.
func (l *Lease) Current(ctx context.Context) (h Holder, ok bool, err error) {
	e, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("lease: read %s: %w", l.key, err)
	}
	var v value
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return Holder{}, false, fmt.Errorf("lease: value of %s: %w", l.key, err)
	}
	h = Holder{ID: v.ID, Token: v.Term, Since: v.Since, Revision: e.Revision()}
	if h.Token == 0 {
		h.Token = e.Revision()
	}
	return h, true, nil
}

// Run campaigns for the lease until ctx ends: it takes the lease when it is
// free, renews it every Renew while it leads, steps down when a renewal
// finds the key changed or when none succeeded by its deadline, and takes
// part again. When ctx ends while it leads, it deletes the lease (on its
// revision) so that a standby takes over at once, and returns ctx's error.
func (l *Lease) Run(ctx context.Context) error {
	l.signal = make(chan struct{}, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	go l.dispatch(stop, done)
	defer func() {
		close(stop)
		<-done
	}()
	for ctx.Err() == nil {
		if _, ok := l.Leading(); ok {
			l.hold(ctx)
			continue
		}
		l.campaign(ctx)
	}
	l.resign()
	return ctx.Err()
}

// emit queues a change for OnChange.
func (l *Lease) emit(c Change) {
	l.qmu.Lock()
	l.queue = append(l.queue, c)
	l.qmu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// dispatch calls OnChange for each queued change, in order, until stop is
// closed and the queue is empty.
func (l *Lease) dispatch(stop, done chan struct{}) {
	defer close(done)
	for {
		l.qmu.Lock()
		batch := l.queue
		l.queue = nil
		l.qmu.Unlock()
		for _, c := range batch {
			if l.onChange != nil {
				l.onChange(c)
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-l.signal:
		case <-stop:
			l.qmu.Lock()
			empty := len(l.queue) == 0
			l.qmu.Unlock()
			if empty {
				return
			}
		}
	}
}

// campaign tries to take the lease, then waits for it to be free (the key
// deleted or expired, which a watch tells at once) or for the next try,
// whichever comes first. It returns when it won, or when ctx ends.
func (l *Lease) campaign(ctx context.Context) {
	// The watch is set before the first try, so that an expiry between the
	// try and the watch is not missed.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := l.kv.Watch(wctx, l.key, jetstream.UpdatesOnly())
	if err != nil {
		l.log.Warn("lease: cannot watch the lease key; polling", "err", err)
	}
	var updates <-chan jetstream.KeyValueEntry
	if w != nil {
		updates = w.Updates()
		defer func() { _ = w.Stop() }()
	}
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			if !ok {
				updates = nil
				continue
			}
			if e == nil || e.Operation() == jetstream.KeyValuePut {
				continue
			}
			l.log.Debug("lease: key freed", "op", e.Operation().String(), "at", e.Created())
		case <-poll.C:
		}
		if l.acquire(ctx) {
			return
		}
		poll.Reset(l.renew)
	}
}

// acquire creates the lease key with its TTL; it reports whether it won.
func (l *Lease) acquire(ctx context.Context) bool {
	start := l.now()
	raw, _ := json.Marshal(value{ID: l.id, Since: start})
	rctx, cancel := context.WithTimeout(ctx, l.ttl-l.margin)
	defer cancel()
	rev, err := l.kv.Create(rctx, l.key, raw, jetstream.KeyTTL(l.ttl))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			l.log.Warn("lease: cannot take the lease", "err", err)
		}
		return false
	}
	l.mu.Lock()
	l.token, l.rev, l.since = rev, rev, start
	l.deadline = start.Add(l.ttl - l.margin)
	l.mu.Unlock()
	l.log.Info("lease: leading", "token", rev)
	l.emit(Change{Leading: true, Token: rev, At: l.now()})
	return true
}

// hold renews the lease while it leads, and returns once it stepped down
// or ctx ended.
func (l *Lease) hold(ctx context.Context) {
	l.mu.Lock()
	lastStart := l.deadline.Add(-(l.ttl - l.margin))
	l.mu.Unlock()
	timer := time.NewTimer(lastStart.Add(l.renew).Sub(l.now()))
	defer timer.Stop()
	for {
		l.mu.Lock()
		deadline := l.deadline
		l.mu.Unlock()
		// The deadline is a timer of its own: a renewal under way is cut
		// at it (its context), and the leader steps down exactly then
		// whatever the network does.
		select {
		case <-ctx.Done():
			return
		case <-l.yield:
			return
		case <-time.After(deadline.Sub(l.now())):
			l.stepDown(deadline, ErrRenewTimeout)
			return
		case <-timer.C:
		}
		began := l.now()
		err := l.renewOnce(ctx, deadline)
		if l.onRenew != nil {
			l.onRenew(l.now().Sub(began), err)
		}
		switch {
		case err == nil:
			timer.Reset(l.renew)
		case errors.Is(err, ErrTaken):
			l.stepDown(l.now(), err)
			return
		default:
			if ctx.Err() != nil {
				return
			}
			// Try again soon: a few tries fit before the deadline.
			l.log.Warn("lease: renewal failed; trying again", "err", err, "left", deadline.Sub(l.now()).Round(time.Millisecond))
			timer.Reset(min(l.renew/4, 250*time.Millisecond))
		}
	}
}

// renewOnce writes the lease again on its last revision, with its TTL.
func (l *Lease) renewOnce(ctx context.Context, deadline time.Time) error {
	l.mu.Lock()
	token, rev, since := l.token, l.rev, l.since
	l.mu.Unlock()
	if token == 0 {
		return nil // stepped down (StepDown): hold returns at its next look
	}
	start := l.now()
	// A duration from this clock's reading, not the deadline itself: the
	// context's timer and the lease then agree whatever the clock.
	rctx, cancel := context.WithTimeout(ctx, deadline.Sub(start))
	defer cancel()
	raw, _ := json.Marshal(value{ID: l.id, Term: token, Since: since})
	m := nats.NewMsg(l.subject)
	m.Data = raw
	ack, err := l.js.PublishMsg(rctx, m, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(l.ttl))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return fmt.Errorf("%w: %v", ErrTaken, err)
		}
		return fmt.Errorf("lease: renew: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token != token {
		return nil // stepped down meanwhile
	}
	l.rev = ack.Sequence
	l.deadline = start.Add(l.ttl - l.margin)
	return nil
}

// stepDown ends the term; at is when it ended by this clock.
func (l *Lease) stepDown(at time.Time, why error) {
	l.mu.Lock()
	token := l.token
	l.token = 0
	l.mu.Unlock()
	if token == 0 {
		return
	}
	l.log.Warn("lease: stepped down", "token", token, "err", why)
	l.emit(Change{Leading: false, Token: token, At: at, Err: why})
}

// StepDown ends the term token at once, for why (e.g. a write the server
// refused for a newer term's fence): Leading is false from now on and
// OnChange is told, as for a lost lease. The key is left to expire (a
// newer leader holds it, or will once it has). A token that is not the
// current term's is ignored. The instance campaigns again afterwards.
func (l *Lease) StepDown(token uint64, why error) {
	l.mu.Lock()
	if l.token != token || token == 0 {
		l.mu.Unlock()
		return
	}
	l.token = 0
	l.mu.Unlock()
	l.log.Warn("lease: stepped down", "token", token, "err", why)
	l.emit(Change{Leading: false, Token: token, At: l.now(), Err: why})
	select {
	case l.yield <- struct{}{}:
	default:
	}
}

// resign ends the term (if any) and deletes the key on its last revision,
// so that a standby need not wait for the TTL.
func (l *Lease) resign() {
	l.mu.Lock()
	token, rev := l.token, l.rev
	l.mu.Unlock()
	if token == 0 {
		return
	}
	l.stepDown(l.now(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), min(requestTimeout, l.margin))
	defer cancel()
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil {
		l.log.Warn("lease: could not give the lease up; it expires on its own", "err", err)
	}
}

// Bucket returns the KV bucket name, creating it when missing with what a
// lease needs: per-key TTLs with their markers, one value per key, file
// storage and replicas copies (3 on a 3-node cluster; create it after all
// nodes joined). An existing bucket is checked (see ErrBadBucket).
func Bucket(ctx context.Context, js jetstream.JetStream, name string, replicas int, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         name,
			Description:    "crier leader lease and cron claims",
			History:        1,
			Replicas:       max(replicas, 1),
			Storage:        jetstream.FileStorage,
			LimitMarkerTTL: markerTTL,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lease: bucket %q: %w", name, err)
	}
	if err := checkBucket(ctx, kv, ttl); err != nil {
		return nil, err
	}
	return kv, nil
}

// checkBucket refuses a bucket without per-key TTLs or with a TTL shorter
// than the lease.
func checkBucket(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("lease: bucket %q: %w", kv.Bucket(), err)
	}
	switch {
	case st.LimitMarkerTTL() <= 0:
		return fmt.Errorf("%w: bucket %q has no limit markers (per-key TTLs): create it with LimitMarkerTTL, or let crier create it", ErrBadBucket, kv.Bucket())
	case st.TTL() != 0 && st.TTL() < ttl:
		return fmt.Errorf("%w: bucket %q's TTL %v is shorter than the lease %v", ErrBadBucket, kv.Bucket(), st.TTL(), ttl)
	}
	return nil
}

// validKey reports whether k is a valid KV key.
func validKey(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '/' || c == '=' || c == '.') {
			return false
		}
		if c == '.' && k[i-1] == '.' {
			return false
		}
	}
	return true
}
