package bot

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"crier/internal/config"
	"crier/plugins"
	"crier/rules"
)

// The message chain. Every received message with a body, and every join,
// leave, nick change and subject change in a room, goes through the links
// set by [bot] chain, in order, the rules engine always last. A link may
// stop the event: a command is not a rule trigger, a flood the moderator
// stopped does not trigger rules.
//
// The chain runs on one dispatch goroutine fed by a bounded queue. The
// session's reader only enqueues, so a plugin that writes to disk never
// stalls the stream; one goroutine keeps the order of events (per room and
// overall); a full queue is counted and logged, not silent. A link that
// runs longer than linkTimeout is disabled and the chain goes on on a fresh
// goroutine, so one blocked plugin cannot stop the bot from answering.

// Chain defaults.
const (
	// chainQueue is how many events may wait for the chain.
	chainQueue = 1024
	// linkTimeout is how long one link may take over one event.
	linkTimeout = 5 * time.Second
)

// chainItem is one event on its way through the chain.
type chainItem struct {
	m  rules.Message
	ev plugins.Event
}

// chain is the dispatch queue and goroutine.
type chain struct {
	b *Bot
	q chan *chainItem
	// timeout is how long one link may take (linkTimeout; tests shorten it
	// before the bot runs).
	timeout atomic.Int64

	// gen is the dispatch goroutine's generation: a goroutine that finds
	// it changed (it was stuck in a link and replaced) ends.
	gen atomic.Uint64
	// busy is when the current link started (Unix nanoseconds, 0: idle);
	// busyLink names it.
	busy     atomic.Int64
	busyMu   sync.Mutex
	busyLink *runningPlugin

	dropLog atomic.Int64 // when a drop was last logged (Unix nanoseconds)
	wg      sync.WaitGroup
}

func newChain(b *Bot) *chain {
	c := &chain{b: b, q: make(chan *chainItem, chainQueue)}
	c.timeout.Store(int64(linkTimeout))
	return c
}

// enqueue hands an event to the chain without blocking.
func (c *chain) enqueue(it *chainItem) {
	select {
	case c.q <- it:
		c.b.hm.chainDepth.Set(float64(len(c.q)))
	default:
		c.b.hm.chainDropped.Inc()
		now := time.Now().UnixNano()
		if last := c.dropLog.Load(); now-last > int64(10*time.Second) && c.dropLog.CompareAndSwap(last, now) {
			c.b.log.Warn("message chain queue full: event dropped (counted in crier_chain_dropped_total)", "queue", chainQueue, "kind", it.m.Kind, "room", it.m.Room)
		}
	}
}

// run dispatches until ctx ends; a watchdog replaces a stuck dispatcher.
func (c *chain) run(ctx context.Context) {
	c.wg.Add(1)
	go c.dispatch(ctx, c.gen.Load())
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		since := c.busy.Load()
		limit := time.Duration(c.timeout.Load())
		if since == 0 || time.Since(time.Unix(0, since)) < limit {
			continue
		}
		c.busyMu.Lock()
		rp := c.busyLink
		c.busyMu.Unlock()
		if rp != nil {
			c.b.plugins.fail(rp, "blocked the message chain for more than "+limit.String())
			c.b.hm.pluginFailures.WithLabelValues(rp.name, "blocked").Inc()
		}
		c.busy.Store(0)
		g := c.gen.Add(1)
		c.wg.Add(1)
		go c.dispatch(ctx, g)
	}
}

// wait waits for the dispatch goroutines that are not stuck.
func (c *chain) wait() { c.wg.Wait() }

func (c *chain) dispatch(ctx context.Context, gen uint64) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-c.q:
			c.b.hm.chainDepth.Set(float64(len(c.q)))
			c.handle(ctx, it, gen)
			if c.gen.Load() != gen {
				return // replaced while stuck in a link
			}
		}
	}
}

// handle runs one event through the links, then the rules.
func (c *chain) handle(ctx context.Context, it *chainItem, gen uint64) {
	b := c.b
	if !b.leader() {
		b.hm.haStandbyEvents.Inc()
		return // a standby answers nothing
	}
	m := &it.m
	if m.Room != "" && m.BotNick == "" {
		m.BotNick = b.rooms.nick(m.Room)
		it.ev.BotNick = m.BotNick
	}
	names := b.cfg.Load().chain
	links := b.plugins.links(names)
	for _, rp := range links {
		if c.gen.Load() != gen {
			return
		}
		if c.runLink(ctx, rp, &it.ev) == plugins.Stop {
			b.hm.chainStopped.WithLabelValues(rp.name).Inc()
			return
		}
	}
	handled := false
	if eng := b.engine.Load(); eng != nil {
		var acts []rules.Action
		acts, handled = eng.EvaluateMatched(*m)
		for _, a := range acts {
			b.met.ruleHits.WithLabelValues(a.Rule).Inc()
			b.doReply(a, it.ev.Time)
		}
	}
	if handled || it.ev.Kind != plugins.EventMessage {
		return
	}
	for _, rp := range links {
		if f, ok := rp.p.(plugins.Fallback); ok {
			c.guard(rp, func() { f.Unhandled(ctx, &it.ev) })
		}
	}
}

// runLink runs one link on ev, recovering a panic (the plugin is then
// disabled) and timing it for the watchdog.
func (c *chain) runLink(ctx context.Context, rp *runningPlugin, ev *plugins.Event) (v plugins.Verdict) {
	l, ok := rp.p.(plugins.Link)
	if !ok {
		return plugins.Continue
	}
	c.guard(rp, func() { v = l.Handle(ctx, ev) })
	return v
}

// guard runs f for rp under the watchdog and panic recovery.
func (c *chain) guard(rp *runningPlugin, f func()) {
	c.busyMu.Lock()
	c.busyLink = rp
	c.busyMu.Unlock()
	c.busy.Store(time.Now().UnixNano())
	defer func() {
		c.busy.Store(0)
		if p := recover(); p != nil {
			c.b.log.Error("plugin panicked in the message chain; plugin disabled", "plugin", rp.name, "panic", p, "stack", string(debug.Stack()))
			c.b.hm.pluginFailures.WithLabelValues(rp.name, "panic").Inc()
			c.b.plugins.fail(rp, "panicked")
		}
	}()
	f()
}

// chainNames is the chain of links (plugin names) of cfg, rules left out:
// the rules engine always runs last.
func chainNames(cfg *config.Config) []string {
	out := make([]string, 0, len(cfg.Bot.Chain))
	for _, n := range cfg.Bot.Chain {
		if n != config.ChainRules {
			out = append(out, n)
		}
	}
	return out
}

// eventOf is the plugins' view of a rules message.
func eventOf(m *rules.Message, id, stanzaID, occupantID string) plugins.Event {
	ev := plugins.Event{
		Time: time.Now(), Type: m.Type, From: m.From, Room: m.Room, Nick: m.Nick,
		Body: m.Body, Subject: m.Subject, ID: id, StanzaID: stanzaID, OccupantID: occupantID,
		RealJID: m.RealJID, Role: m.Role, Affiliation: m.Affiliation, BotNick: m.BotNick,
	}
	switch m.Kind {
	case rules.KindJoin:
		ev.Kind = plugins.EventJoin
	case rules.KindLeave:
		ev.Kind = plugins.EventLeave
	case rules.KindSubject:
		ev.Kind = plugins.EventSubject
	case rules.KindNick:
		ev.Kind = plugins.EventNick
	default:
		ev.Kind = plugins.EventMessage
	}
	return ev
}
