package moderator

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"crier/internal/state"
	"crier/plugins"
	"crier/plugins/moderator/detect"
)

// Name is the plugin's name and its table.
const Name = "moderator"

// Schema is the version of the plugin's state namespace.
const Schema = 1

// SampleConfig is the annotated [moderator] table.
//
//go:embed sample.conf
var SampleConfig string

// Errors of the moderator package.
var (
	// ErrNotChecked means New was given a config that Check never saw.
	ErrNotChecked = errors.New("moderator: config not checked")
	// ErrNoTarget means a command named nobody the moderator can identify.
	ErrNoTarget = errors.New("moderator: no such occupant or JID")
	// ErrNoCase means a command named a case that does not exist.
	ErrNoCase = errors.New("moderator: no such case")
	// ErrNoRoom means a room-scoped command was given outside a room and
	// without room=.
	ErrNoRoom = errors.New("moderator: which room? give the command in the room or with room=ROOM")
)

func init() {
	plugins.Register(plugins.Spec{
		Name: Name, Table: Name, Schema: Schema,
		Config: func() any { return defaultConfig() },
		New: func(cfg any, core plugins.Core) (plugins.Plugin, bool, error) {
			c := cfg.(*Config)
			if !c.enabled {
				return &Plugin{cfg: c, core: core}, false, nil
			}
			p, err := New(c, core)
			return p, err == nil, err
		},
	})
}

// Plugin is the moderator: a link of the message chain.
type Plugin struct {
	cfg  *Config
	core plugins.Core
	def  *engine
	room map[string]*engine
	now  func() time.Time

	host plugins.Host
	log  *slog.Logger
	met  *metrics
	ns   state.Namespace

	writes   chan func(state.Tx) error
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	vpool    sync.Pool

	mu        sync.Mutex
	strikes   map[string]*strike
	mutes     map[string]time.Time
	permits   map[string]time.Time
	observing map[string]bool
	locks     map[string]time.Time // room actions in force, by room|field
	rights    map[string]string    // room to what the bot lacks there
	seq       int64
	alerts    []time.Time
	// slowLast is when each occupant's last message passed slow mode
	// (room|identity); slowRoom the intervals set by the slowmode command
	// (kept in the store), which win over the config's.
	slowLast map[string]time.Time
	slowRoom map[string]time.Duration

	// list is the shared ban list, nil when [moderator.banlist] is off.
	list *banList
	// bans are the bans the moderator made and has not lifted (room|JID
	// to the end, zero for none), enforced again when a banned JID joins:
	// ejabberd 23.01 lets an outcast back in once their role was changed.
	bans map[string]time.Time
	// roomsEvery is how often watchRooms looks for rooms just joined.
	roomsEvery time.Duration

	// nickMu guards nicks, each room's occupants as the chain saw them
	// join, leave and change nick, for the mention and capitals
	// detectors: a map look-up per word instead of a Host call.
	nickMu sync.Mutex
	nicks  map[string]*roomNicks
}

// scratch is what one message's check needs, reused.
type scratch struct {
	msg detect.Message
	vs  []detect.Verdict
}

// roomNicks are a room's nicks, rebuilt from the Host now and then in
// case the chain dropped an event.
type roomNicks struct {
	set   detect.NickSet
	built time.Time
}

// nickRefresh is how often a room's nicks are rebuilt from the Host.
const nickRefresh = 5 * time.Minute

// New builds the moderator from a checked config.
func New(c *Config, core plugins.Core) (*Plugin, error) {
	if c.fileWords == nil {
		c.fileWords = map[string][]string{}
	}
	p := &Plugin{cfg: c, core: core, room: map[string]*engine{}, now: time.Now, roomsEvery: time.Second}
	clock := func() time.Time { return p.now() }
	var err error
	if p.def, err = newEngine(&c.Settings, c.fileWords, clock); err != nil {
		return nil, fmt.Errorf("moderator: %w", err)
	}
	for i := range c.Room {
		e, err := newEngine(&c.Room[i].Settings, c.fileWords, clock)
		if err != nil {
			return nil, fmt.Errorf("moderator: room %s: %w", c.Room[i].JID, err)
		}
		p.room[c.Room[i].JID] = e
	}
	p.vpool.New = func() any { return &scratch{vs: make([]detect.Verdict, 0, 8)} }
	return p, nil
}

// Name returns "moderator".
func (p *Plugin) Name() string { return Name }

// Start loads the strikes, mutes, permits and expiries from the store and
// starts the store writer and the rights check.
func (p *Plugin) Start(ctx context.Context, env plugins.Env) error {
	p.host, p.log = env.Host, env.Logger
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.met = newMetrics(env.Registerer)
	p.strikes, p.mutes, p.permits = map[string]*strike{}, map[string]time.Time{}, map[string]time.Time{}
	p.observing, p.locks, p.rights = map[string]bool{}, map[string]time.Time{}, map[string]string{}
	p.nicks = map[string]*roomNicks{}
	p.slowLast, p.slowRoom = map[string]time.Time{}, map[string]time.Duration{}
	p.bans = map[string]time.Time{}
	ns, err := env.Host.State()
	if errors.Is(err, plugins.ErrNoStore) {
		// Without a store nothing survives a restart, but timed actions
		// still end: an in-memory namespace keeps them.
		p.log.Warn("no state store: strikes, cases and timed actions are lost on restart")
		ns, err = state.NewMemory().Namespace(Name, Schema)
	}
	if err != nil {
		return fmt.Errorf("moderator: state: %w", err)
	}
	p.ns = ns
	if err := p.load(); err != nil {
		return fmt.Errorf("moderator: state: %w", err)
	}
	if err := p.retainCases(); err != nil {
		return fmt.Errorf("moderator: state: %w", err)
	}
	p.writes = make(chan func(state.Tx) error, 1024)
	p.stop = make(chan struct{})
	p.wg.Add(3)
	go p.writer()
	go p.watchRights()
	go p.watchRooms()
	if err := p.startBanList(); err != nil {
		p.stopOnce.Do(func() { close(p.stop) })
		p.wg.Wait()
		return fmt.Errorf("moderator: %w", err)
	}
	// Expiries that came while crier was down fire now.
	ns.OnExpire(p.expired)
	return nil
}

// Stop stops the writer once every queued write is done, and the rights
// check. It does not clear the namespace's expiry function: a reloaded
// instance has set its own already.
func (p *Plugin) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() {
		if p.stop != nil {
			close(p.stop)
		}
	})
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// memState is what the moderator keeps in memory of its namespace.
type memState struct {
	seq                         int64
	strikes                     map[string]*strike
	mutes, permits, locks, bans map[string]time.Time
	observing                   map[string]bool
	slowRoom                    map[string]time.Duration
}

// readState reads what a previous run (or, with [ha], the leader) kept.
func (p *Plugin) readState() (memState, error) {
	now := p.now()
	st := memState{strikes: map[string]*strike{}, mutes: map[string]time.Time{}, permits: map[string]time.Time{},
		locks: map[string]time.Time{}, bans: map[string]time.Time{}, observing: map[string]bool{}, slowRoom: map[string]time.Duration{}}
	err := p.ns.View(func(tx state.Tx) error {
		if v, ok := tx.Get("seq"); ok {
			st.seq, _ = strconv.ParseInt(string(v), 10, 64)
		}
		if err := tx.ForEach("strike|", func(k string, v []byte) error {
			var s strike
			if json.Unmarshal(v, &s) == nil && s.Key != "" {
				st.strikes[s.Key] = &s
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.ForEach("exp|unmute|", func(k string, v []byte) error {
			var pe pending
			if json.Unmarshal(v, &pe) == nil {
				if at, ok := tx.Expiry(k); ok && at.After(now) {
					st.mutes[pe.Room+"|"+pe.Target] = at
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.ForEach("exp|room|", func(k string, v []byte) error {
			var pe pending
			if json.Unmarshal(v, &pe) == nil {
				if at, ok := tx.Expiry(k); ok {
					st.locks[pe.Room+"|"+pe.Field] = at
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.ForEach("permit|", func(k string, v []byte) error {
			if at, ok := tx.Expiry(k); ok && at.After(now) {
				st.permits[string(v)] = at
			}
			return nil
		}); err != nil {
			return err
		}
		if err := readBans(tx, st.bans); err != nil {
			return err
		}
		if err := tx.ForEach("slow|", func(k string, v []byte) error {
			if d, err := time.ParseDuration(string(v)); err == nil && d >= 0 {
				st.slowRoom[strings.TrimPrefix(k, "slow|")] = d
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.ForEach("observe|", func(k string, v []byte) error {
			st.observing[strings.TrimPrefix(k, "observe|")] = string(v) == "on"
			return nil
		})
	})
	return st, err
}

// load reads what a previous run kept (at start).
func (p *Plugin) load() error {
	st, err := p.readState()
	if err != nil {
		return err
	}
	p.useState(st)
	return nil
}

// useState puts st in memory; the case counter never goes back.
func (p *Plugin) useState(st memState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq = max(p.seq, st.seq)
	p.strikes, p.mutes, p.permits, p.locks, p.bans = st.strikes, st.mutes, st.permits, st.locks, st.bans
	p.observing, p.slowRoom = st.observing, st.slowRoom
}

// reloadState reads the namespace again once this instance comes to
// lead: with [ha] it is shared, and the leader before this one counted
// strikes, muted, banned and numbered cases this one did not hear of.
func (p *Plugin) reloadState() {
	p.flush()
	st, err := p.readState()
	if err != nil {
		p.met.failures.WithLabelValues("reload", "store").Inc()
		p.log.Warn("moderator state unreadable after taking the lead", "err", err)
		return
	}
	p.useState(st)
	p.log.Info("leading: moderator state read again", "strikes", len(st.strikes), "bans", len(st.bans), "last_case", st.seq)
}

// readBans reads the bans the moderator made and has not lifted into m.
func readBans(tx state.Tx, m map[string]time.Time) error {
	if err := tx.ForEach("exp|unban|", func(k string, v []byte) error {
		var pe pending
		if json.Unmarshal(v, &pe) == nil && pe.JID != "" {
			if at, ok := tx.Expiry(k); ok {
				m[pe.Room+"|"+strings.ToLower(pe.JID)] = at
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return tx.ForEach("ban|", func(k string, v []byte) error {
		var b struct{ Room, JID string }
		if json.Unmarshal(v, &b) == nil && b.JID != "" {
			m[b.Room+"|"+strings.ToLower(b.JID)] = time.Time{}
		}
		return nil
	})
}

// writer commits queued writes in order, several in one transaction when
// they queue up, so that the chain never waits for the disk.
func (p *Plugin) writer() {
	defer p.wg.Done()
	for {
		var batch []func(state.Tx) error
		select {
		case fn := <-p.writes:
			batch = append(batch, fn)
		case <-p.stop:
			for {
				select {
				case fn := <-p.writes:
					batch = append(batch, fn)
				default:
					p.commit(batch)
					return
				}
			}
		}
	more:
		for len(batch) < 256 {
			select {
			case fn := <-p.writes:
				batch = append(batch, fn)
			default:
				break more
			}
		}
		p.commit(batch)
	}
}

func (p *Plugin) commit(batch []func(state.Tx) error) {
	if len(batch) == 0 {
		return
	}
	err := p.ns.Update(func(tx state.Tx) error {
		for _, fn := range batch {
			if fn == nil {
				continue
			}
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, state.ErrTooLarge) && len(batch) > 1 {
		// More than a KV store takes in one commit: in halves. The
		// functions only write in their transaction, so running them
		// again is safe (a KV store runs them again on a conflict too).
		p.commit(batch[:len(batch)/2])
		p.commit(batch[len(batch)/2:])
		return
	}
	if err != nil {
		p.met.failures.WithLabelValues("store", "store").Inc()
		p.log.Error("state write failed", "err", err)
	}
}

// write queues fn for the writer; when the queue is full, or the plugin
// stopped (a server's late answer), it runs now.
func (p *Plugin) write(fn func(state.Tx) error) {
	select {
	case <-p.stop:
		p.commit([]func(state.Tx) error{fn})
		return
	default:
	}
	select {
	case p.writes <- fn:
	default:
		p.commit([]func(state.Tx) error{fn})
	}
}

// flush waits until every write queued so far is committed.
func (p *Plugin) flush() {
	done := make(chan struct{})
	var once sync.Once // a KV store may run the function more than once
	p.write(func(state.Tx) error { once.Do(func() { close(done) }); return nil })
	select {
	case <-done:
		// The function ran inside the writer's transaction; an empty one
		// after it returns once that one is committed (a store runs one
		// Update at a time).
		_ = p.ns.Update(func(state.Tx) error { return nil })
	case <-time.After(5 * time.Second):
	}
}

// engineFor returns the engine of a room.
func (p *Plugin) engineFor(room string) *engine {
	if e, ok := p.room[room]; ok {
		return e
	}
	return p.def
}

// watches reports whether the moderator watches room.
func (p *Plugin) watches(room string) bool {
	if room == "" {
		return false
	}
	if len(p.cfg.Rooms) == 0 {
		return true
	}
	for _, r := range p.cfg.Rooms {
		if r == room {
			return true
		}
	}
	return false
}

// Handle checks room messages, joins and nick changes. It stops the chain
// for a message it acted on.
func (p *Plugin) Handle(_ context.Context, ev *plugins.Event) plugins.Verdict {
	if !p.watches(ev.Room) {
		return plugins.Continue
	}
	switch ev.Kind {
	case plugins.EventMessage:
		if ev.Type == "groupchat" {
			return p.message(ev)
		}
	case plugins.EventJoin:
		p.trackNick(ev.Room, "", ev.Nick)
		if ev.RealJID != "" && !p.self(ev) {
			if p.banAgain(ev) {
				return plugins.Continue
			}
			p.listJoin(ev.Room, ev.RealJID)
		}
		p.join(ev, ev.Nick)
	case plugins.EventLeave:
		p.trackNick(ev.Room, ev.Nick, "")
	case plugins.EventNick:
		p.trackNick(ev.Room, ev.Nick, ev.NewNick)
		p.renamed(ev)
	}
	return plugins.Continue
}

// trackNick follows a room's occupants: old leaves, new joins.
func (p *Plugin) trackNick(room, old, new string) {
	p.nickMu.Lock()
	defer p.nickMu.Unlock()
	rn := p.nicks[room]
	if rn == nil {
		return // built on the room's next message
	}
	if old != "" {
		delete(rn.set, strings.ToLower(old))
	}
	if new != "" {
		rn.set[strings.ToLower(new)] = struct{}{}
	}
}

// roomNickSet returns the room's nicks, with nickMu held: the caller
// unlocks it once done with the set.
func (p *Plugin) roomNickSet(room string, now time.Time) detect.NickSet {
	p.nickMu.Lock()
	rn := p.nicks[room]
	if rn == nil || now.Sub(rn.built) > nickRefresh || now.Before(rn.built) {
		occ := p.host.Occupants(room)
		rn = &roomNicks{set: make(detect.NickSet, len(occ)), built: now}
		for _, o := range occ {
			rn.set[strings.ToLower(o.Nick)] = struct{}{}
		}
		p.nicks[room] = rn
	}
	return rn.set
}

// identity is the key of an occupant's counters: the occupant id when
// the room gives one, else the real JID, else the nick.
func identity(occupantID, realJID, nick string) string {
	switch {
	case occupantID != "":
		return "oid:" + occupantID
	case realJID != "":
		return "jid:" + strings.ToLower(realJID)
	case nick != "":
		return "nick:" + nick
	}
	return ""
}

// self reports whether the event is the bot's own.
func (p *Plugin) self(ev *plugins.Event) bool {
	return ev.Nick != "" && ev.Nick == ev.BotNick || ev.RealJID != "" && strings.EqualFold(ev.RealJID, p.core.BotJID)
}

// exempt reports whether the sender is left alone.
func (p *Plugin) exempt(e *engine, ev *plugins.Event, key string, now time.Time) bool {
	if p.self(ev) || e.exempt(ev.Role, ev.Affiliation, ev.RealJID) {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.permits) == 0 {
		return false
	}
	at, ok := p.permits[ev.Room+"|"+key]
	return ok && now.Before(at)
}

// observingRoom reports whether the room is in observe mode (dry_run, or
// observe on).
func (p *Plugin) observingRoom(e *engine, room string) bool {
	p.mu.Lock()
	on, set := p.observing[room]
	p.mu.Unlock()
	if set {
		return on
	}
	return e.s.DryRun
}

// message runs the detectors on a room message and acts on the verdict.
func (p *Plugin) message(ev *plugins.Event) plugins.Verdict {
	now := p.now()
	e := p.engineFor(ev.Room)
	key := identity(ev.OccupantID, ev.RealJID, ev.Nick)
	if key == "" {
		p.met.unidentified.Inc()
		return plugins.Continue
	}
	if p.exempt(e, ev, key, now) {
		p.met.exempt.Inc()
		return plugins.Continue
	}
	sc := p.vpool.Get().(*scratch)
	defer func() { sc.msg, sc.vs = detect.Message{}, sc.vs[:0]; p.vpool.Put(sc) }()
	sc.msg = detect.Message{Room: ev.Room, Sender: key, Nick: ev.Nick, Body: ev.Body, Occupants: p.roomNickSet(ev.Room, now)}
	vs := e.set.Check(&sc.msg, sc.vs[:0])
	p.nickMu.Unlock()
	if v, ok := p.slow(e, ev.Room, key, now); ok {
		vs = append(vs, v)
	}
	sc.vs = vs
	if len(vs) == 0 {
		return plugins.Continue
	}
	dry := p.observingRoom(e, ev.Room)
	newcomer := false
	if e.s.Links.NewcomerPoints > 0 {
		if o, ok := p.host.Occupant(ev.Room, ev.Nick); ok && !o.Joined.IsZero() && now.Sub(o.Joined) < e.s.Links.Newcomer.Std() {
			newcomer = true
		}
	}
	var points int
	var hits []detect.Verdict
	for i := range vs {
		v := &vs[i]
		if v.Detector == "links" && newcomer {
			v.Points += e.s.Links.NewcomerPoints
			v.Detail += " (newcomer)"
		}
		observed := dry || e.observed(v)
		p.met.hit(v.Detector, v.Rule, observed)
		if v.Room {
			p.roomAction(e, ev, v, e.s.Raid.Action, e.s.Raid.Duration.Std(), observed, now)
			continue
		}
		if e.observed(v) && !dry {
			p.log.Info("observed rule hit", "room", ev.Room, "nick", ev.Nick, "verdict", v.String())
			continue
		}
		points += v.Points
		hits = append(hits, *v)
	}
	if len(hits) == 0 || points < e.s.Threshold {
		return plugins.Continue
	}
	p.punish(e, ev, key, hits, points, dry, now)
	if dry || e.goesOn(hits) {
		return plugins.Continue
	}
	return plugins.Stop
}

// slowInterval is a room's slow mode: the slowmode command's, else the
// config's; 0 is off.
func (p *Plugin) slowInterval(e *engine, room string) time.Duration {
	p.mu.Lock()
	d, ok := p.slowRoom[room]
	var raidUntil time.Time
	raid := false
	if len(p.locks) > 0 { // the key is built only when a room action is on
		raidUntil, raid = p.locks[room+"|"+RoomSlowMode]
	}
	p.mu.Unlock()
	if !ok {
		d = e.s.SlowMode.Interval.Std()
	}
	if raid && p.now().Before(raidUntil) && e.s.SlowMode.RaidInterval.Std() > d {
		d = e.s.SlowMode.RaidInterval.Std()
	}
	return d
}

// slow checks a message against the room's slow mode: a finding when the
// sender's last message that passed came less than the interval ago. A
// message that does not pass does not move the sender's time on.
func (p *Plugin) slow(e *engine, room, key string, now time.Time) (detect.Verdict, bool) {
	iv := p.slowInterval(e, room)
	if iv <= 0 {
		return detect.Verdict{}, false
	}
	k := room + "|" + key
	p.mu.Lock()
	defer p.mu.Unlock()
	last, ok := p.slowLast[k]
	if ok && now.Sub(last) < iv && !now.Before(last) {
		return detect.Verdict{Detector: "slowmode", Rule: "interval", Points: e.s.SlowMode.Points,
			Detail: fmt.Sprintf("a message %s after the last (slow mode: one per %s)", shortDur(now.Sub(last)), shortDur(iv))}, true
	}
	p.slowLast[k] = now
	return detect.Verdict{}, false
}

// join checks a joining occupant's nick, feeds the join-wave detector and
// mutes again someone whose mute has not ended.
func (p *Plugin) join(ev *plugins.Event, nick string) {
	now := p.now()
	e := p.engineFor(ev.Room)
	key := identity(ev.OccupantID, ev.RealJID, nick)
	if key == "" {
		p.met.unidentified.Inc()
		return
	}
	if ev.Kind == plugins.EventJoin && !p.self(ev) {
		for _, v := range e.set.Join(ev.Room, key, nil) {
			observed := p.observingRoom(e, ev.Room) || e.observed(&v)
			p.met.hit(v.Detector, v.Rule, observed)
			p.roomAction(e, ev, &v, e.s.JoinWave.Action, e.s.JoinWave.Duration.Std(), observed, now)
		}
	}
	if p.exempt(e, ev, key, now) {
		return
	}
	p.mu.Lock()
	until, muted := p.mutes[ev.Room+"|"+key]
	p.mu.Unlock()
	if muted && now.Before(until) && ev.Kind == plugins.EventJoin && !p.observingRoom(e, ev.Room) {
		if err := p.host.Do(plugins.Action{Kind: plugins.ActDevoice, Room: ev.Room, Nick: nick, Reason: "still muted"}, func(err error) {
			if err != nil {
				p.failed(ActMute, ev.Room, nick, err)
			}
		}); err != nil {
			p.failed(ActMute, ev.Room, nick, err)
		}
	}
	if e.s.NickAction == ActNone {
		return
	}
	m := detect.Message{Room: ev.Room, Body: nick}
	vs := e.nicks.Check(&m, nil)
	if len(vs) == 0 {
		return
	}
	v := vs[0]
	v.Detail = "nick " + strconv.Quote(nick) + ": " + v.Detail
	observed := p.observingRoom(e, ev.Room) || e.observed(&v)
	p.met.hit("nick", v.Rule, observed)
	v.Detector, v.Rule = "nick", v.Detector+"/"+v.Rule
	nev := *ev
	nev.Nick = nick
	p.apply(e, &nev, key, []detect.Verdict{v}, e.s.NickAction, 0, float64(v.Points), observed, now)
}

// renamed follows a nick change: counters kept under the nick move to the
// new one, and the new nick is checked.
func (p *Plugin) renamed(ev *plugins.Event) {
	if ev.NewNick == "" {
		return
	}
	if ev.OccupantID == "" && ev.RealJID == "" {
		oldKey, newKey := identity("", "", ev.Nick), identity("", "", ev.NewNick)
		p.mu.Lock()
		if s, ok := p.strikes[ev.Room+"|"+oldKey]; ok {
			delete(p.strikes, ev.Room+"|"+oldKey)
			s.Key, s.Nick = ev.Room+"|"+newKey, ev.NewNick
			p.strikes[s.Key] = s
			cp := *s
			p.write(func(tx state.Tx) error {
				if err := tx.Delete(strikeKey(ev.Room + "|" + oldKey)); err != nil {
					return err
				}
				return putStrike(tx, &cp, p.engineFor(ev.Room))
			})
		}
		for _, m := range []map[string]time.Time{p.mutes, p.permits} {
			if at, ok := m[ev.Room+"|"+oldKey]; ok {
				delete(m, ev.Room+"|"+oldKey)
				m[ev.Room+"|"+newKey] = at
			}
		}
		p.mu.Unlock()
	} else {
		key := ev.Room + "|" + identity(ev.OccupantID, ev.RealJID, ev.Nick)
		p.mu.Lock()
		if s, ok := p.strikes[key]; ok {
			s.Nick = ev.NewNick
		}
		p.mu.Unlock()
	}
	p.join(ev, ev.NewNick)
}

// Ready is always true: a room where the bot lacks rights is named, so
// that /-/ready and status say so, without taking the bot out of service.
func (p *Plugin) Ready() (bool, string) {
	lines := p.Status()
	return true, strings.Join(lines, "; ")
}

// Status lists the rooms where the bot lacks the rights to act.
func (p *Plugin) Status() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for room, why := range p.rights {
		if why != "" {
			out = append(out, "no rights to act in "+room+": "+why)
		}
	}
	sortStrings(out)
	return out
}

// watchRights checks the bot's role and affiliation in each watched room
// now and every 30 seconds; a room where rights went missing is reported
// to the alert target.
func (p *Plugin) watchRights() {
	defer p.wg.Done()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		p.checkRights()
		p.sweep(p.now())
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// sweep forgets, in memory, strikes whose points decayed and whose
// cooldown ended, and permits and mutes that ended (the store drops its
// copies through their expiry): without it every offender would stay in
// memory until a restart.
func (p *Plugin) sweep(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.strikes {
		room := s.Room
		e := p.engineFor(room)
		if s.decayed(now, e.s.Decay.Std()) == 0 && now.Sub(s.LevelAt) >= e.s.Cooldown.Std() {
			delete(p.strikes, k)
		}
	}
	for _, m := range []map[string]time.Time{p.permits, p.mutes} {
		for k, at := range m {
			if !now.Before(at) {
				delete(m, k)
			}
		}
	}
	for k, at := range p.bans {
		if !at.IsZero() && !now.Before(at) {
			delete(p.bans, k)
		}
	}
	for k, at := range p.slowLast {
		room, _, _ := strings.Cut(k, "|")
		iv, ok := p.slowRoom[room]
		if !ok {
			iv = p.engineFor(room).s.SlowMode.Interval.Std()
		}
		iv = max(iv, p.engineFor(room).s.SlowMode.RaidInterval.Std())
		if now.Sub(at) >= iv {
			delete(p.slowLast, k)
		}
	}
}

// watchRooms looks every second for rooms the bot has just joined (the
// chain hears of others' joins only): the ban list is applied there, and
// occupants the moderator banned who are in the room anyway (they came
// in while crier was away, on a server that let them) are removed.
func (p *Plugin) watchRooms() {
	defer p.wg.Done()
	t := time.NewTicker(p.roomsEvery)
	defer t.Stop()
	known := map[string]bool{}
	speaking := true
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		// A standby that comes to lead reads what the leader kept.
		if now := p.host.Speaking(); now && !speaking {
			p.reloadState()
			speaking = true
		} else if !now {
			speaking = false
		}
		p.enteredRooms(known)
	}
}

// enteredRooms handles the rooms joined since the last call; known holds
// the rooms joined then.
func (p *Plugin) enteredRooms(known map[string]bool) {
	now := map[string]bool{}
	for _, r := range p.host.Rooms() {
		if r.State == "joined" && p.watches(r.JID) {
			now[r.JID] = true
		}
	}
	for room := range known {
		if !now[room] {
			delete(known, room)
		}
	}
	for room := range now {
		if known[room] {
			continue
		}
		known[room] = true
		p.kickList()
		for _, o := range p.host.Occupants(room) {
			if o.RealJID != "" && o.Nick != "" {
				p.banAgain(&plugins.Event{Kind: plugins.EventJoin, Room: room, Nick: o.Nick, RealJID: o.RealJID})
			}
		}
	}
}

func (p *Plugin) checkRights() {
	for _, r := range p.host.Rooms() {
		if !p.watches(r.JID) || r.State != "joined" {
			continue
		}
		why := p.engineFor(r.JID).rightsProblem(r.Role, r.Affiliation)
		p.mu.Lock()
		old, known := p.rights[r.JID]
		p.rights[r.JID] = why
		p.mu.Unlock()
		if why != "" && (!known || old != why) {
			p.log.Warn("the bot lacks rights to moderate", "room", r.JID, "why", why)
			p.alert(r.JID, "moderator: in "+r.JID+" crier is "+why)
		}
	}
}

// Compile-time guards.
var (
	_ plugins.Starter        = (*Plugin)(nil)
	_ plugins.Stopper        = (*Plugin)(nil)
	_ plugins.Link           = (*Plugin)(nil)
	_ plugins.Readier        = (*Plugin)(nil)
	_ plugins.StatusReporter = (*Plugin)(nil)
	_ plugins.Commander      = (*Plugin)(nil)
	_ plugins.Checked        = (*Config)(nil)
)
