package bot

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/lease"
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
	done  chan struct{}
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
		return nil, fmt.Errorf("bot: [ha] bucket %s: %w", cfg.HA.Bucket, err)
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s/%s@%s:%d", b.bare, cfg.XMPP.Resource, host, os.Getpid())
	l, err := lease.New(cctx, js, kv, lease.Options{TTL: ttl, ID: id, OnChange: b.onLeadership, Logger: b.log.With("component", "ha")})
	if err != nil {
		return nil, fmt.Errorf("bot: [ha]: %w", err)
	}
	h := &haRun{lease: l, done: make(chan struct{})}
	b.ha.Store(h)
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(h.done)
		if err := l.Run(runCtx); err != nil && runCtx.Err() == nil {
			b.log.Error("leader election ended", "err", err)
		}
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

// onLeadership starts or stops what only the leader does.
func (b *Bot) onLeadership(c lease.Change) {
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
