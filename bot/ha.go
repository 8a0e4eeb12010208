package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crier/bot/outbox"
	"crier/internal/lease"
	"crier/internal/state"
)

// High availability ([ha]): instances that share a bucket elect one leader
// through a lease in JetStream KV (internal/lease). Only the leader joins
// rooms, runs the chain (answers, commands, moderation) and runs cron; a
// standby is signed in under its own resource, connected to NATS and
// ready, and takes over within about one lease of the leader's end. The
// leader stops speaking when it cannot renew, before its lease can expire
// (the lease's own clock); Leading() is asked for every event, so a lost
// lease stops the chain at once.

// haRun is the election of one Run.
type haRun struct {
	lease *lease.Lease
	kv    jetstream.KeyValue // the lease bucket: cron claims, member keys
	// epoch is the lease bucket's creation time: the shared state's fence
	// tells its tokens from those of an earlier bucket of the same name.
	epoch string
	done  chan struct{}
	// view is the last look at the bucket: who leads, who stands by.
	view atomic.Pointer[haView]
}

// haView is who leads and who stands by, as last seen in the bucket.
type haView struct {
	Self     string
	Leader   string    // "" when nobody holds the lease
	Since    time.Time // when the leader won it, by its clock
	Token    uint64
	Standbys []string // the live instances but the leader, sorted
	Err      string   // why the bucket could not be read, if so
}

// memberPrefix is the lease bucket's keys naming the live instances: each
// instance writes its own with a TTL of one lease, again every third of a
// lease, so that status can say who stands by.
const memberPrefix = "members."

// haLines describes the election for status and /-/ready; nil without
// [ha].
func (b *Bot) haLines() []string {
	h := b.ha.Load()
	if h == nil {
		return nil
	}
	v := h.view.Load()
	if v == nil {
		return []string{"ha: campaigning"}
	}
	role := "standing by"
	if b.leader() {
		role = "leading"
	}
	line := "ha: " + role + " as " + v.Self
	switch {
	case v.Err != "":
		line += "; bucket unreadable: " + v.Err
	case v.Leader == "":
		line += "; no leader"
	default:
		line += fmt.Sprintf("; leader %s since %s (token %d)", v.Leader, v.Since.UTC().Format(time.RFC3339), v.Token)
	}
	if v.Err == "" {
		sb := "none"
		if len(v.Standbys) > 0 {
			sb = strings.Join(v.Standbys, ", ")
		}
		line += "; standing by: " + sb
	}
	return []string{line}
}

// watchHA keeps this instance's member key alive and h.view up to date
// until ctx ends.
func (b *Bot) watchHA(ctx context.Context, h *haRun, js jetstream.JetStream, kv jetstream.KeyValue, id string, ttl time.Duration) {
	sum := sha256.Sum256([]byte(id))
	key := memberPrefix + hex.EncodeToString(sum[:12])
	subject := "$KV." + kv.Bucket() + "." + key
	// One lease (whole seconds, as NATS counts message TTLs), written
	// every third of it: a dead instance drops out of the list within a
	// lease.
	memberTTL := ttl
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		look := func() {
			cctx, cancel := context.WithTimeout(ctx, ttl/3)
			defer cancel()
			v := &haView{Self: id}
			m := nats.NewMsg(subject)
			m.Data = []byte(id)
			if _, err := js.PublishMsg(cctx, m, jetstream.WithMsgTTL(memberTTL)); err != nil {
				v.Err = err.Error()
				h.view.Store(v)
				return
			}
			if cur, ok, err := h.lease.Current(cctx); err != nil {
				v.Err = err.Error()
			} else if ok {
				v.Leader, v.Since, v.Token = cur.ID, cur.Since, cur.Token
			}
			keys, err := kv.ListKeysFiltered(cctx, memberPrefix+"*")
			if err != nil {
				v.Err = err.Error()
				h.view.Store(v)
				return
			}
			alive := 0
			for k := range keys.Keys() {
				e, err := kv.Get(cctx, k)
				if err != nil {
					continue // expired meanwhile
				}
				alive++
				if member := string(e.Value()); member != v.Leader {
					v.Standbys = append(v.Standbys, member)
				}
			}
			slices.Sort(v.Standbys)
			b.hm.haInstances.Set(float64(alive))
			h.view.Store(v)
		}
		look()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// leader reports whether this instance may speak: always without [ha].
func (b *Bot) leader() bool {
	h := b.ha.Load()
	if h == nil {
		// With [ha], nothing is said before the lease is won.
		return !b.cfg.Load().cfg.HA.Enabled()
	}
	_, ok := h.lease.Leading()
	return ok
}

// mayWrite is the outbox's last check before a stanza is written: a
// message goes out only while this instance leads, except shared work to a
// user (a relayed push, which a standby delivers too); presence (leaving
// rooms) always.
func (b *Bot) mayWrite(it *outbox.Item) bool {
	return it.Kind != outbox.Message || (it.Work && it.Room == "") || b.leader()
}

// startHA connects to NATS and campaigns for the lease; it returns nil
// when [ha] is not configured.
func (b *Bot) startHA(ctx context.Context) (stop func(), err error) {
	cfg := b.cfg.Load().cfg
	if !cfg.HA.Enabled() {
		return func() {}, nil
	}
	nc := b.haNC // opened with the shared state store
	if nc == nil {
		return nil, fmt.Errorf("bot: [ha]: no NATS connection")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bot: [ha]: %w", err)
	}
	ttl := cfg.HA.Lease.Std()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := lease.Bucket(cctx, js, cfg.HA.Bucket, cfg.HA.Replicas, ttl)
	if err != nil {
		return nil, fmt.Errorf("bot: [ha] bucket %s: %w%s", cfg.HA.Bucket, err, replicasHint(err, cfg.HA.Replicas))
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s/%s@%s:%d", b.bare, cfg.XMPP.Resource, host, os.Getpid())
	l, err := lease.New(cctx, js, kv, lease.Options{TTL: ttl, ID: id, OnChange: b.onLeadership, OnRenew: b.onRenew, Logger: b.log.With("component", "ha")})
	if err != nil {
		return nil, fmt.Errorf("bot: [ha]: %w", err)
	}
	epoch, err := leaseEpoch(cctx, kv)
	if err != nil {
		return nil, fmt.Errorf("bot: [ha] bucket %s: %w", cfg.HA.Bucket, err)
	}
	h := &haRun{lease: l, kv: kv, epoch: epoch, done: make(chan struct{})}
	b.ha.Store(h)
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		b.watchHA(runCtx, h, js, kv, id, ttl)
	}()
	go func() {
		defer close(h.done)
		if err := l.Run(runCtx); err != nil && runCtx.Err() == nil {
			b.log.Error("leader election ended", "err", err)
		}
		<-watched
	}()
	b.log.Info("high availability: campaigning for the lease; a standby until it is won", "bucket", cfg.HA.Bucket, "lease", ttl, "id", id)
	return func() {
		// Run gives the lease up when its context ends, so that a
		// standby takes over at once.
		stopRun()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
		}
	}, nil
}

// leaseEpoch names the lease bucket's incarnation: its stream's creation
// time.
func leaseEpoch(ctx context.Context, kv jetstream.KeyValue) (string, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return "", err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return "", fmt.Errorf("no stream information for bucket %s", kv.Bucket())
	}
	return bs.StreamInfo().Created.UTC().Format(time.RFC3339Nano), nil
}

// onRenew observes a renewal of the lease.
func (b *Bot) onRenew(took time.Duration, err error) {
	b.hm.haRenew.Observe(took.Seconds())
	if err != nil {
		b.hm.haRenewFailures.Inc()
	}
}

// fenceState fences the shared state's writes with the term's token when
// this instance starts leading, and lifts the fence when it stops: NATS
// then refuses the writes of a term a newer leader has fenced off, whatever
// this instance's clock says. It reports false when the term is stale
// already (a newer leader raised the fence) or the fence could not be
// raised: the instance steps down rather than lead unfenced.
func (b *Bot) fenceState(c lease.Change) bool {
	f, ok := b.store.(state.Fencer)
	if !ok {
		return true // no shared state to fence
	}
	if !c.Leading {
		f.Unfence(c.Token)
		return true
	}
	epoch := ""
	if h := b.ha.Load(); h != nil {
		epoch = h.epoch
	}
	if err := f.Fence(epoch, c.Token, func(err error) { b.onFenced(c.Token, err) }); err != nil {
		if errors.Is(err, state.ErrFenced) {
			b.hm.haFenced.Inc()
		}
		b.log.Error("shared state: cannot fence the writes of this term; stepping down", "token", c.Token, "err", err)
		if h := b.ha.Load(); h != nil {
			h.lease.StepDown(c.Token, err)
		}
		return false
	}
	return true
}

// onFenced is told of a write to the shared state that NATS refused for a
// newer leader's fence: the term token is over, whatever the lease's own
// clock says. Each refusal is counted, the first of a term logged, and the
// instance steps down.
func (b *Bot) onFenced(token uint64, err error) {
	b.hm.haFenced.Inc()
	if b.fencedLogged.Swap(token) != token {
		b.log.Error("shared state: write refused, a newer leader holds the fence; stepping down", "token", token, "err", err)
	}
	if h := b.ha.Load(); h != nil {
		h.lease.StepDown(token, err)
	}
}

// onLeadership starts or stops what only the leader does.
func (b *Bot) onLeadership(c lease.Change) {
	if !b.fenceState(c) {
		return // the step-down's change follows
	}
	if c.Leading {
		b.hm.haLeader.Set(1)
		b.log.Info("leading: joining rooms, answering and running cron", "token", c.Token)
	} else {
		b.hm.haLeader.Set(0)
		b.hm.haLostLeadership.Inc()
		b.log.Warn("not leading any more: leaving rooms, no answers, no cron", "token", c.Token)
	}
	if c.Leading {
		// Another instance may have joined or left rooms by command.
		if err := b.loadCmdRooms(); err != nil {
			b.log.Warn("shared state: rooms joined by command unreadable", "err", err)
		}
	}
	b.rooms.Set(b.wantedRooms(b.cfg.Load().cfg))
	b.cronMu.Lock()
	if c.Leading && b.online.Load() {
		b.cron.Reconnected()
	} else if !c.Leading {
		b.cron.Disconnected()
	}
	b.cronMu.Unlock()
}
