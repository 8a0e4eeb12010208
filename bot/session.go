package bot

// The session stage: one connection from dial to its end, the reconnect
// loop around it, keepalive and XEP-0410 self-pings.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/bot/outbox"
	"crier/transport"
)

// backoff returns the delay before retry number try (0-based): exponential
// from MinBackoff, capped at MaxBackoff, with full jitter in the upper half
// so that many bots restarted together do not reconnect in lockstep.
func (b *Bot) backoff(try int) time.Duration {
	d := float64(b.opts.MinBackoff) * math.Pow(2, float64(min(try, 30)))
	d = min(d, float64(b.opts.MaxBackoff))
	return time.Duration(d/2 + mrand.Float64()*d/2)
}

// Run connects and keeps the bot connected until ctx ends, then shuts down
// gracefully: no new triggers, the outbox flushed, rooms left with
// unavailable presence, the stream closed. It returns nil after a graceful
// shutdown.
func (b *Bot) Run(ctx context.Context) error {
	if b.cfg.Load().cfg.XMPP.InsecureSkipVerify {
		b.log.Warn("TLS certificate verification is OFF (insecure_skip_verify = true)")
	}
	if !b.cfg.Load().cfg.XMPP.StreamManagement {
		b.log.Info("stream management is off (stream_management = false): deliveries are confirmed by pings, a lost connection is never resumed")
	}
	// Stopped in reverse: the chain (no new replies), then the store, then
	// the outbox, which the graceful shutdown has flushed by then.
	defer background(b.out.Run)()
	defer b.closeStore()
	stopChain := background(b.chain.run)
	defer func() {
		stopChain()
		b.chain.wait()
	}()
	if err := b.plugins.startAll(ctx, b.pending); err != nil {
		return fmt.Errorf("bot: %w", err)
	}
	b.pending = nil
	defer b.stopPlugins()
	stopHA, err := b.startHA(ctx)
	if err != nil {
		return err
	}
	defer stopHA()
	b.cronMu.Lock()
	b.cron.Start()
	b.cronMu.Unlock()
	defer func() {
		b.cronMu.Lock()
		b.cron.Stop()
		b.cronMu.Unlock()
	}()

	try := 0
	for ctx.Err() == nil {
		up, err := b.session(ctx)
		if ctx.Err() != nil {
			break
		}
		reason := transport.Reason(err)
		b.met.reconnects.WithLabelValues(reason).Inc()
		if up > 30*time.Second {
			try = 0
		}
		d := b.backoff(try)
		try++
		if reason == "auth" {
			// A refused login does not get better by retrying soon: wait
			// the longest interval (a password fixed by a reload is used
			// at the next try).
			d = max(d, b.opts.MaxBackoff)
		}
		b.setLastError(reason, err)
		if up > 0 {
			b.log.Warn("session lost; reconnecting", "reason", reason, "err", err, "in", d.Round(time.Millisecond))
		} else {
			b.log.Error("cannot connect; retrying", "reason", reason, "err", err, "in", d.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	return nil
}

// session runs one connection from dial to its end. It returns how long the
// session was up (0 when it never came up) and why it ended.
func (b *Bot) session(ctx context.Context) (time.Duration, error) {
	st := b.cfg.Load()
	x := st.cfg.XMPP
	prev := b.resume
	b.resume = nil
	conn, err := transport.Connect(ctx, transport.Options{
		JID:       b.jid,
		Password:  x.Password.Reveal(),
		Resource:  x.Resource,
		Transport: x.Transport,
		Address:   x.Address,
		TLS:       x.TLS,
		BOSHURL:   x.BOSHURL,
		WSURL:     x.WebSocketURL,
		WSOrigin:  x.WebSocketOrigin,
		TLSConfig: b.tlsConf,
		Timeout:   x.ConnectTimeout.Std(),
		Resume:    prev,
		DisableSM: !x.StreamManagement,
		Tap:       transport.TapFunc(b.tap),
		OnTapStop: func(d transport.Direction, limit string) {
			b.met.streamLimits.WithLabelValues(d.String(), limit).Inc()
		},
		Logger: b.log.With("component", "transport"),
	})
	if err != nil {
		if prev != nil && !prev.Expired(time.Now()) {
			b.resume = prev // the session may still be waiting on the server
		}
		return 0, err
	}
	started := time.Now()
	resumed := conn.Resumed()
	b.log.Info("connected", "jid", conn.JID.String(), "transport", conn.Transport, "server", conn.Server, "auth", conn.Mechanism, "resumed", resumed)
	b.lastErr.Store(nil)
	b.met.connects.Inc()
	if resumed {
		b.met.resumed.Inc()
	}
	b.met.connected.Set(1)
	b.connMu.Lock()
	b.conn = conn
	b.connSince = started
	b.connMu.Unlock()

	h := b.newHandler(conn.JID)
	serveErr := make(chan error, 1)
	go func() { serveErr <- conn.Session.Serve(h) }()

	// The session's context ends with the session, not with ctx: a graceful
	// stop still needs acknowledgements while it flushes the outbox.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	acked, ackKnown := conn.ResumeAcked()
	b.out.AttachResumed(connSender{sessionWriter{conn.Session, b.fromFilter()}, conn}, b.barrier(sctx, conn), outbox.ResumeInfo{Resumed: resumed, Acked: acked, Known: ackKnown})
	if resumed {
		// The server kept the session: presence and rooms are as they
		// were, and it resends what this side had not received.
		b.rooms.Resume()
	} else {
		if !b.component() {
			// A component has no presence of its own to broadcast (no
			// roster): only its rooms see it, by their join presence.
			_ = b.out.Enqueue(&outbox.Item{Kind: outbox.Presence, Priority: outbox.High})
		}
		b.rooms.Online()
	}
	b.cronMu.Lock()
	b.online.Store(true)
	if b.leader() {
		b.cron.Reconnected()
	}
	b.cronMu.Unlock()
	b.wg.Add(2)
	go b.keepalive(sctx, conn, x.Keepalive.Std(), x.KeepaliveTimeout.Std())
	go b.selfPing(sctx, conn)

	select {
	case err = <-serveErr:
		if err == nil {
			err = errors.New("bot: server closed the stream")
		}
	case <-ctx.Done():
		b.shutdownSession(conn)
		select {
		case <-serveErr:
		case <-time.After(3 * time.Second):
		}
	}
	cancel()
	b.out.Attach(nil, nil)
	if ctx.Err() == nil && conn.ResumeState() != nil {
		// Resumable: close the socket first (no </stream:stream>, which
		// would end the session on the server), so that no write still
		// under way moves the counts after they are taken.
		conn.Abort()
		b.resume = conn.ResumeState()
	}
	if b.resume != nil {
		b.rooms.Suspend() // until the session is resumed, or not
	} else {
		b.rooms.Offline()
	}
	b.cronMu.Lock()
	b.online.Store(false)
	b.cron.Disconnected()
	b.cronMu.Unlock()
	if b.resume != nil {
		conn.Abort() // no </stream:stream>: that would end the session on the server
	} else {
		_ = conn.Close()
	}
	b.wg.Wait()
	b.connMu.Lock()
	b.conn = nil
	b.connMu.Unlock()
	b.met.connected.Set(0)
	return time.Since(started), err
}

func (b *Bot) barrier(sctx context.Context, conn *transport.Conn) outbox.Acker {
	domain := b.serverAddr()
	return func() error {
		ctx, cancel := context.WithTimeout(sctx, time.Minute)
		defer cancel()
		// With stream management (XEP-0198) the barrier is <r/> and the
		// server's <a h="N"/>; transport.ErrNoSM means the server does not
		// offer it (or has not enabled it), and the ping below stands in.
		err := conn.Barrier(ctx)
		if !errors.Is(err, transport.ErrNoSM) {
			return err
		}
		err = b.ping(ctx, conn, domain)
		var se stanza.Error
		if err != nil && !errors.As(err, &se) {
			return err
		}
		return nil
	}
}

// shutdownSession is the lame-duck part of a graceful stop.
func (b *Bot) shutdownSession(conn *transport.Conn) {
	b.stopPlugins()
	b.cronMu.Lock()
	b.cron.Stop()
	b.cronMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := b.out.Flush(ctx); err != nil {
		b.log.Warn("outbox not empty at shutdown", "waiting", b.out.Depth())
	}
	b.rooms.LeaveAll()
	if !b.component() {
		_ = b.out.Enqueue(&outbox.Item{Kind: outbox.Presence, Type: "unavailable", Priority: outbox.High})
	}
	_ = b.out.Flush(ctx)
	b.log.Info("left rooms, closing the stream")
	_ = conn.Close()
}

// keepalive pings the server. A server is taken for deaf, and the
// connection dropped, when a ping goes unanswered for the timeout while
// nothing else shows life: no element came in and the outbox wrote nothing.
// A shaping server that reads slowly keeps taking stanzas from the outbox,
// so its late answer to a ping (queued behind them) is waited for, up to
// ten times the timeout.
func (b *Bot) keepalive(ctx context.Context, conn *transport.Conn, every, timeout time.Duration) {
	defer b.wg.Done()
	if every <= 0 {
		return
	}
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	// Each wait is jittered: bots started together do not ping their
	// server in lockstep.
	t := time.NewTimer(jitter(every))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(jitter(every))
		if !b.pingAlive(ctx, conn, timeout) {
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("server did not answer a ping and showed no other sign of life; dropping the connection", "timeout", timeout)
			if c := conn.Session.Conn(); c != nil {
				_ = c.Close()
			}
			return
		}
	}
}

// pingAlive sends one ping and reports whether the server is alive.
func (b *Bot) pingAlive(ctx context.Context, conn *transport.Conn, timeout time.Duration) bool {
	pctx, cancel := context.WithTimeout(ctx, 10*timeout)
	defer cancel()
	done := make(chan error, 1)
	sent := time.Now()
	go func() { done <- b.ping(pctx, conn, b.serverAddr()) }()
	check := time.NewTicker(max(timeout/4, time.Millisecond))
	defer check.Stop()
	for {
		select {
		case err := <-done:
			var se stanza.Error
			return err == nil || errors.As(err, &se) // an error answer is an answer
		case <-check.C:
			last := max(b.lastIn.Load(), b.out.LastWrite())
			if time.Since(sent) > timeout && time.Since(time.Unix(0, last)) > timeout {
				cancel()
				<-done
				return false
			}
		}
	}
}

// selfPing checks every joined room with an XEP-0410 self-ping, once per
// interval. The pings of one round are spread evenly over the interval, in
// a new random order each round and with a random offset within each slot,
// so that a bot in a thousand rooms sends a steady trickle instead of a
// burst of a thousand iqs (and the answers do not arrive in one either):
// at the default 5 minutes, one ping every 300 ms.
// A few pings may wait for answers at once; a slow answer does not hold up
// the next room's ping.
func (b *Bot) selfPing(ctx context.Context, conn *transport.Conn) {
	defer b.wg.Done()
	every := b.opts.SelfPing
	if every < 0 {
		return
	}
	var pings sync.WaitGroup
	defer pings.Wait()
	slots := make(chan struct{}, selfPingParallel)
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	if !wait(jitter(every)) {
		return
	}
	for {
		round := time.Now()
		targets := b.rooms.joinedTargets()
		mrand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		// Slots of at least selfPingMinGap: with many rooms, a few
		// pings share a slot, so the process wakes up at most ten times a
		// second for them (each wake-up from idle costs more CPU than a
		// ping).
		n := max(len(targets), 1)
		per := max(1, int(selfPingMinGap*time.Duration(n)/every))
		gap := every * time.Duration(per) / time.Duration(n)
		var due time.Time
		for i, tg := range targets {
			if i%per == 0 {
				due = round.Add(time.Duration(i/per)*gap + time.Duration(mrand.Int64N(int64(max(gap, 1)))))
			}
			if !wait(time.Until(due)) {
				return
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			pings.Add(1)
			go func() {
				defer pings.Done()
				defer func() { <-slots }()
				b.selfPingOne(ctx, conn, tg)
			}()
		}
		if !wait(time.Until(round.Add(every))) {
			return
		}
	}
}

// selfPingParallel bounds the self-pings waiting for answers at once;
// selfPingMinGap is the shortest time between two slots of a round.
const (
	selfPingParallel = 16
	selfPingMinGap   = 100 * time.Millisecond
)

// jitter returns d changed by up to a tenth either way, so that timers of
// many bots (or many rooms) drift apart instead of firing together.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + time.Duration(mrand.Int64N(int64(d/5)+1))
}

// selfPingOne pings the bot's own occupant in one room and applies the
// answer.
func (b *Bot) selfPingOne(ctx context.Context, conn *transport.Conn, tg selfPingTarget) {
	to, err := jid.Parse(tg.occupant)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = b.ping(pctx, conn, to)
	cancel()
	if ctx.Err() != nil {
		return
	}
	var se stanza.Error
	if err == nil || !errors.As(err, &se) {
		return
	}
	switch se.Condition {
	case stanza.ServiceUnavailable, stanza.FeatureNotImplemented:
		// joined; the ping was answered by a client that lacks it
	case stanza.RemoteServerNotFound, stanza.RemoteServerTimeout:
		// indeterminate
	default:
		b.rooms.selfPingResult(tg.room, tg.gen, false, string(se.Condition))
	}
}

// tap counts every top-level element on the stream.
func (b *Bot) tap(dir transport.Direction, name xml.Name, raw []byte) {
	if dir == transport.In {
		b.lastIn.Store(time.Now().UnixNano())
	}
	kind := name.Local
	if name.Space == "urn:xmpp:sm:3" && (kind == "r" || kind == "a") {
		kind = "sm_" + kind // stream management's ack requests and answers
	}
	b.met.countStanza(dir == transport.Out, kind)
}

// dropConn closes the current connection's socket; the session's reader
// then ends and the supervisor reconnects.
func (b *Bot) dropConn() {
	b.connMu.Lock()
	conn := b.conn
	b.connMu.Unlock()
	if conn != nil {
		if c := conn.Session.Conn(); c != nil {
			_ = c.Close()
		}
	}
}

// setLastError records why the session is down, for /-/ready.
func (b *Bot) setLastError(reason string, err error) {
	why := reason
	if err != nil {
		why += ": " + err.Error()
	}
	b.lastErr.Store(&why)
}

// lastError is why the session is down, or "".
func (b *Bot) lastError() string {
	if p := b.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// background runs f on a goroutine of its own until the returned stop is
// called; stop cancels f's context and waits for f to return.
func background(f func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
