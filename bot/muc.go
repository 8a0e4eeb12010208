package bot

import (
	"encoding/xml"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/bot/outbox"
	"crier/plugins"
	"crier/rules"
)

// Namespaces used by the MUC manager.
const (
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin = "http://jabber.org/protocol/muc#admin"
)

// roomState is where the bot stands with one room.
type roomState int

const (
	roomIdle    roomState = iota // offline, or waiting for a rejoin timer
	roomJoining                  // join presence sent, no self-presence yet
	roomJoined                   // status 110 seen
	roomStopped                  // banned, wrong password, members only: no more tries
)

func (s roomState) String() string {
	return [...]string{"idle", "joining", "joined", "stopped"}[s]
}

// RoomConfig is a room the bot should be in.
type RoomConfig struct {
	JID      string // bare room JID
	Nick     string
	Password string
}

type occupant struct {
	role, affiliation, realJID string
	// occupantID is the room's XEP-0421 id of the occupant, when it
	// gives one; joined is when the bot saw the occupant arrive.
	occupantID string
	joined     time.Time
}

type mucRoom struct {
	cfg      RoomConfig
	cur      string // nick in use or being tried
	state    roomState
	why      string // why the room is not joined, for /-/ready and logs
	tries    int    // failed joins in a row, for the backoff
	conflict int    // nick conflicts in a row
	timer    *time.Timer
	gen      uint64 // bumps on every (re)join attempt; stale timers check it
	// queued: waiting for a slot of the join window; inflight: the join
	// went out and holds a slot until answered (joinpace.go).
	queued, inflight bool
	slot             int    // joins outstanding when this one went out
	lastErr          string // why the last try failed, until joined

	role, affiliation string
	occupants         map[string]occupant
	subjectSeen       bool
	// renamed holds new nicks announced by a 303 whose arrival is the
	// second half of a nick change, not a join.
	renamed map[string]bool
	// byCommand marks a room joined by command (kept in the store).
	byCommand bool

	// kept is the joined state saved by Suspend, for Resume.
	kept *keptRoom
}

// keptRoom is what a joined room looked like when the connection was lost
// under a session that may be resumed.
type keptRoom struct {
	nick, role, affiliation string
	occupants               map[string]occupant
	subjectSeen             bool
}

// rooms is crier's own MUC manager (mellium's muc.Channel deadlocks on
// kicks and bans, and hangs on rewritten nicks). It keeps the wanted rooms
// joined: it sends join presence through the outbox, reads self-presence
// status codes, and schedules rejoins with backoff after kicks, shutdowns,
// technical removals and disconnects. Everything runs under one mutex; no
// method blocks on the network.
type rooms struct {
	mu      sync.Mutex
	m       map[string]*mucRoom
	online  bool
	out     *outbox.Outbox
	log     *slog.Logger
	met     *metrics
	backoff func(try int) time.Duration
	joinTTL time.Duration // a join without an answer is retried after this
	pace    *joinPacer
	// event reports occupant joins, leaves and nick changes (extra is the
	// new nick) to the chain.
	event func(kind rules.EventKind, room, nick string, occ occupant, extra string)
}

func newRooms(out *outbox.Outbox, log *slog.Logger, met *metrics, backoff func(int) time.Duration) *rooms {
	return &rooms{
		m:       make(map[string]*mucRoom),
		out:     out,
		log:     log,
		met:     met,
		backoff: backoff,
		joinTTL: 30 * time.Second,
		pace:    newJoinPacer(met.reg),
	}
}

// Set makes the wanted rooms cfgs: new rooms are joined, rooms no longer
// wanted are left, a room whose nick or password changed is joined again.
func (r *rooms) Set(cfgs []RoomConfig) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := make(map[string]RoomConfig, len(cfgs))
	for _, c := range cfgs {
		want[c.JID] = c
	}
	for key, rm := range r.m {
		c, ok := want[key]
		if !ok {
			r.leaveLocked(rm)
			delete(r.m, key)
			r.out.ForgetRoom(key)
			r.log.Info("left room (no longer configured)", "room", key)
			continue
		}
		if c != rm.cfg {
			rm.cfg = c
			rm.cur = c.Nick
			rm.kept = nil
			rm.tries, rm.conflict = 0, 0
			if r.online {
				r.log.Info("room settings changed, joining again", "room", key)
				r.leaveLocked(rm)
				r.joinLocked(rm)
			}
		}
	}
	for key, c := range want {
		if _, ok := r.m[key]; ok {
			continue
		}
		rm := &mucRoom{cfg: c, cur: c.Nick, occupants: make(map[string]occupant), why: "not joined yet"}
		r.m[key] = rm
		if r.online {
			r.joinLocked(rm)
		}
	}
	r.met.roomsWanted.Set(float64(len(r.m)))
	r.gaugeLocked()
}

// Online is called after each (re)connect: every room is joined again.
func (r *rooms) Online() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.online = true
	for _, rm := range r.sortedLocked() {
		rm.kept = nil
		if rm.state == roomStopped && strings.HasPrefix(rm.why, "banned") {
			continue // a ban outlives a reconnect
		}
		rm.tries, rm.conflict = 0, 0
		rm.cur = rm.cfg.Nick
		r.joinLocked(rm)
	}
}

// sortedLocked lists the rooms in the order of their JIDs, so that joins
// go out in a stable order.
func (r *rooms) sortedLocked() []*mucRoom {
	out := make([]*mucRoom, 0, len(r.m))
	for _, rm := range r.m {
		out = append(out, rm)
	}
	slices.SortFunc(out, func(a, b *mucRoom) int { return strings.Compare(a.cfg.JID, b.cfg.JID) })
	return out
}

// Suspend is called when the connection of a session that may be resumed
// is lost: the rooms count as not joined (Offline), but what the joined
// ones looked like is kept for Resume.
func (r *rooms) Suspend() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range r.m {
		rm.kept = nil
		if rm.state == roomJoined {
			rm.kept = &keptRoom{nick: rm.cur, role: rm.role, affiliation: rm.affiliation, occupants: rm.occupants, subjectSeen: rm.subjectSeen}
		}
	}
	r.offlineLocked()
}

// Resume is called after the session was resumed: the server kept the bot
// in the rooms it was in, so they are joined again without a join (what
// happened meanwhile, such as a kick, is in the stanzas the server
// resends); the others are joined as after a connect.
func (r *rooms) Resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.online = true
	for _, rm := range r.sortedLocked() {
		k := rm.kept
		rm.kept = nil
		if k != nil && rm.state == roomIdle {
			rm.state, rm.why, rm.tries, rm.conflict = roomJoined, "", 0, 0
			rm.cur, rm.role, rm.affiliation = k.nick, k.role, k.affiliation
			rm.occupants, rm.subjectSeen = k.occupants, k.subjectSeen
			r.out.SetRoomJoined(rm.cfg.JID, true)
			r.log.Info("still in room (session resumed)", "room", rm.cfg.JID, "nick", rm.cur)
			continue
		}
		if rm.state == roomStopped && strings.HasPrefix(rm.why, "banned") {
			continue
		}
		rm.tries, rm.conflict = 0, 0
		rm.cur = rm.cfg.Nick
		r.joinLocked(rm)
	}
	r.gaugeLocked()
}

// Offline is called when the session is gone: nothing is joined any more.
func (r *rooms) Offline() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range r.m {
		rm.kept = nil
	}
	r.offlineLocked()
}

func (r *rooms) offlineLocked() {
	r.online = false
	r.pace.reset()
	for _, rm := range r.m {
		rm.queued, rm.inflight = false, false
		r.stopTimerLocked(rm)
		if rm.state != roomStopped || !strings.HasPrefix(rm.why, "banned") {
			rm.state = roomIdle
			rm.why = "disconnected"
		}
		rm.occupants = make(map[string]occupant)
		rm.subjectSeen = false
		rm.gen++
	}
	r.gaugeLocked()
}

// LeaveAll sends unavailable presence to every joined room (shutdown).
func (r *rooms) LeaveAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range r.m {
		r.leaveLocked(rm)
	}
	r.gaugeLocked()
}

func (r *rooms) stopTimerLocked(rm *mucRoom) {
	if rm.timer != nil {
		rm.timer.Stop()
		rm.timer = nil
	}
}

func (r *rooms) leaveLocked(rm *mucRoom) {
	r.stopTimerLocked(rm)
	r.releaseLocked(rm)
	rm.gen++
	if rm.state == roomJoined || rm.state == roomJoining {
		_ = r.out.Enqueue(&outbox.Item{Kind: outbox.Presence, To: rm.cfg.JID + "/" + rm.cur, Type: "unavailable", Priority: outbox.High})
	}
	rm.state = roomIdle
	rm.why = "left"
	r.out.SetRoomJoined(rm.cfg.JID, false)
}

// joinLocked joins rm: the join waits for a slot of the join window
// (joinpace.go).
func (r *rooms) joinLocked(rm *mucRoom) { r.requestJoinLocked(rm) }

// sendJoinLocked sends a join presence, holding a slot of the join window
// until it is answered, and arms the join timeout.
func (r *rooms) sendJoinLocked(rm *mucRoom) {
	r.stopTimerLocked(rm)
	rm.gen++
	rm.inflight = true
	r.pace.inflight++
	r.pace.peak = max(r.pace.peak, r.pace.inflight)
	rm.slot = r.pace.inflight
	rm.state = roomJoining
	rm.why = "joining"
	rm.subjectSeen = false
	rm.occupants = make(map[string]occupant)
	pw := rm.cfg.Password
	err := r.out.Enqueue(&outbox.Item{
		Kind:     outbox.Presence,
		To:       rm.cfg.JID + "/" + rm.cur,
		Priority: outbox.High,
		Payload:  func() xml.TokenReader { return joinPayload(pw) },
	})
	if err != nil {
		r.log.Warn("cannot queue room join", "room", rm.cfg.JID, "err", err)
	}
	gen := rm.gen
	key := rm.cfg.JID
	rm.timer = time.AfterFunc(r.joinTTL, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		rm := r.m[key]
		if rm == nil || rm.gen != gen || rm.state != roomJoining || !r.online {
			return
		}
		r.log.Warn("room join not answered, trying again", "room", key, "after", r.joinTTL)
		r.pace.failures.WithLabelValues("timeout").Inc()
		r.pace.shrink()
		r.retryLocked(rm, "join timeout")
	})
}

// joinPayload is <x xmlns='…muc'><history maxstanzas='0'/><password/></x>:
// no history, so old messages never trigger anything.
func joinPayload(password string) xml.TokenReader {
	hist := xmlstream.Wrap(nil, xml.StartElement{
		Name: xml.Name{Local: "history"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "maxstanzas"}, Value: "0"}, {Name: xml.Name{Local: "maxchars"}, Value: "0"}},
	})
	inner := []xml.TokenReader{hist}
	if password != "" {
		inner = append(inner, outbox.TextElem("password", password))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{Name: xml.Name{Space: nsMUC, Local: "x"}})
}

// retryLocked schedules a rejoin with backoff.
func (r *rooms) retryLocked(rm *mucRoom, reason string) {
	r.stopTimerLocked(rm)
	r.releaseLocked(rm)
	rm.gen++
	rm.state = roomIdle
	rm.why = reason
	rm.lastErr = reason
	r.out.SetRoomJoined(rm.cfg.JID, false)
	r.met.rejoins.WithLabelValues(metricReason(reason)).Inc()
	d := r.backoff(rm.tries)
	rm.tries++
	gen := rm.gen
	key := rm.cfg.JID
	r.log.Info("rejoining room", "room", key, "reason", reason, "in", d.Round(time.Millisecond))
	rm.timer = time.AfterFunc(d, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		rm := r.m[key]
		if rm == nil || rm.gen != gen || !r.online {
			return
		}
		r.joinLocked(rm)
	})
	r.gaugeLocked()
}

// bounced acts on a room's answer that the bot is not in it (a message
// it sent there came back not-acceptable or item-not-found): the bot
// joins it again, and the message waits for that in the outbox.
func (r *rooms) bounced(room string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rm := r.m[room]
	if rm == nil || rm.state != roomJoined {
		return // not wanted, or already on its way back in
	}
	r.log.Warn("the room refused a message: the server says the bot is not in it", "room", room)
	r.retryLocked(rm, "bounced: not in the room")
}

func metricReason(reason string) string {
	switch {
	case strings.HasPrefix(reason, "bounced"):
		return "bounced"
	case strings.HasPrefix(reason, "kicked"):
		return "kicked"
	case strings.Contains(reason, "shut down"):
		return "shutdown"
	case strings.Contains(reason, "technical"):
		return "technical"
	case strings.Contains(reason, "self-ping"):
		return "self_ping"
	case strings.Contains(reason, "timeout"):
		return "timeout"
	case strings.Contains(reason, "error"):
		return "error"
	}
	return "other"
}

func (r *rooms) stopLocked(rm *mucRoom, why string) {
	r.stopTimerLocked(rm)
	r.releaseLocked(rm)
	rm.gen++
	rm.state = roomStopped
	rm.why = why
	r.out.SetRoomJoined(rm.cfg.JID, false)
	r.log.Error("giving up on room", "room", rm.cfg.JID, "reason", why)
	r.gaugeLocked()
}

func (r *rooms) gaugeLocked() {
	n := 0
	for _, rm := range r.m {
		if rm.state == roomJoined {
			n++
		}
	}
	r.met.roomsJoined.Set(float64(n))
}

// mucPresence is the part of a presence the MUC manager reads.
type mucPresence struct {
	From       jid.JID
	Type       string
	Statuses   []int
	Item       mucItem
	Err        *stanzaError
	OccupantID string
}

// handlePresence takes presence from a room. It reports false when the
// presence is not from a room the bot manages.
func (r *rooms) handlePresence(p mucPresence) bool {
	key := p.From.Bare().String()
	nick := p.From.Resourcepart()
	r.mu.Lock()
	defer r.mu.Unlock()
	rm := r.m[key]
	if rm == nil {
		return false
	}
	self := slices.Contains(p.Statuses, 110)
	switch {
	case p.Type == "error":
		if nick == rm.cur || nick == "" {
			r.joinErrorLocked(rm, p.Err)
		}
	case p.Type == "unavailable":
		if self || (nick == rm.cur && rm.state == roomJoined) {
			r.selfLeftLocked(rm, p)
			return true
		}
		if occ, ok := rm.occupants[nick]; ok {
			delete(rm.occupants, nick)
			renamed := slices.Contains(p.Statuses, 303) && p.Item.Nick != ""
			if renamed {
				if rm.renamed == nil {
					rm.renamed = make(map[string]bool)
				}
				rm.renamed[p.Item.Nick] = true
			}
			if rm.state == roomJoined && r.event != nil {
				if renamed {
					r.event(rules.KindNick, key, nick, occ, p.Item.Nick)
				} else {
					r.event(rules.KindLeave, key, nick, occ, "")
				}
			}
		}
	case p.Type == "" || p.Type == "available":
		occ := occupant{role: p.Item.Role, affiliation: p.Item.Affiliation, realJID: bareOf(p.Item.JID), occupantID: p.OccupantID}
		if self {
			rm.cur = nick // the server may have changed it (status 210)
			rm.role, rm.affiliation = occ.role, occ.affiliation
			if rm.state != roomJoined {
				if rm.inflight {
					r.pace.answered()
				}
				rm.state = roomJoined
				rm.why, rm.lastErr = "", ""
				rm.tries, rm.conflict = 0, 0
				r.stopTimerLocked(rm)
				r.releaseLocked(rm)
				r.out.SetRoomJoined(key, true)
				r.log.Info("joined room", "room", key, "nick", nick, "role", occ.role, "affiliation", occ.affiliation)
				r.gaugeLocked()
			}
			return true
		}
		old, known := rm.occupants[nick]
		if known {
			occ.joined = old.joined
		} else {
			occ.joined = time.Now()
		}
		rm.occupants[nick] = occ
		if rm.renamed[nick] {
			delete(rm.renamed, nick)
			return true
		}
		if !known && rm.state == roomJoined && r.event != nil {
			r.event(rules.KindJoin, key, nick, occ, "")
		}
	}
	return true
}

// selfLeftLocked handles the bot's own unavailable presence: a nick change,
// a kick, a ban, a shutdown…
func (r *rooms) selfLeftLocked(rm *mucRoom, p mucPresence) {
	st := p.Statuses
	switch {
	case slices.Contains(st, 303) && p.Item.Nick != "":
		rm.cur = p.Item.Nick // nick change; the new self-presence follows
		return
	case slices.Contains(st, 301):
		r.stopLocked(rm, "banned from the room"+withReason(p.Item.Reason))
		return
	case slices.Contains(st, 307):
		r.log.Warn("kicked from room", "room", rm.cfg.JID, "reason", p.Item.Reason)
		r.retryLocked(rm, "kicked"+withReason(p.Item.Reason))
	case slices.Contains(st, 332):
		r.retryLocked(rm, "room service shut down")
	case slices.Contains(st, 333):
		r.retryLocked(rm, "technical removal")
	case slices.Contains(st, 321):
		r.retryLocked(rm, "removed: affiliation change")
	case slices.Contains(st, 322):
		r.retryLocked(rm, "removed: room became members-only")
	default:
		if rm.state == roomJoined || rm.state == roomJoining {
			r.retryLocked(rm, "removed from the room")
		}
	}
}

func withReason(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func (r *rooms) joinErrorLocked(rm *mucRoom, e *stanzaError) {
	cond := "undefined-condition"
	text := ""
	if e != nil {
		cond, text = e.Condition, e.Text
	}
	if rm.inflight {
		r.joinRefusedLocked(rm, e)
		r.releaseLocked(rm)
	}
	switch stanza.Condition(cond) {
	case stanza.Conflict:
		rm.conflict++
		if rm.conflict > 20 {
			r.stopLocked(rm, "every nick tried is taken")
			return
		}
		rm.cur = fmt.Sprintf("%s_%d", rm.cfg.Nick, rm.conflict+1)
		r.log.Warn("nick taken in room, trying another", "room", rm.cfg.JID, "nick", rm.cur)
		r.joinLocked(rm)
	case stanza.NotAuthorized:
		r.stopLocked(rm, "room password wrong or missing")
	case stanza.Forbidden:
		r.stopLocked(rm, "banned from the room")
	case stanza.RegistrationRequired:
		r.stopLocked(rm, "room is members-only and the bot is not a member")
	default:
		r.log.Warn("cannot join room", "room", rm.cfg.JID, "condition", cond, "text", text)
		r.retryLocked(rm, "join error: "+cond)
	}
}

// selfPingResult applies the answer to an XEP-0410 self-ping: joined says
// whether the server still has the bot in the room.
func (r *rooms) selfPingResult(room string, gen uint64, joined bool, cond string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rm := r.m[room]
	if rm == nil || rm.gen != gen || rm.state != roomJoined || joined {
		return
	}
	r.log.Warn("self-ping says the bot is no longer in the room", "room", room, "condition", cond)
	r.retryLocked(rm, "self-ping: not joined")
}

// joinedTargets lists (room, own occupant JID, generation) for self-pings.
func (r *rooms) joinedTargets() (out []selfPingTarget) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, rm := range r.m {
		if rm.state == roomJoined {
			out = append(out, selfPingTarget{room: key, occupant: key + "/" + rm.cur, gen: rm.gen})
		}
	}
	return out
}

type selfPingTarget struct {
	room, occupant string
	gen            uint64
}

// nick returns the bot's nick in room ("" when not joined).
func (r *rooms) nick(room string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm := r.m[room]; rm != nil {
		return rm.cur
	}
	return ""
}

// isRoom reports whether key is a room the bot manages.
func (r *rooms) isRoom(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[key] != nil
}

// occupantOf returns what the bot knows of nick in room.
func (r *rooms) occupantOf(room, nick string) (occupant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm := r.m[room]; rm != nil {
		o, ok := rm.occupants[nick]
		return o, ok
	}
	return occupant{}, false
}

// selfRole returns the bot's role and affiliation in room.
func (r *rooms) selfRole(room string) (role, affiliation string, joined bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm := r.m[room]; rm != nil {
		return rm.role, rm.affiliation, rm.state == roomJoined
	}
	return "", "", false
}

// subject records a subject message; it reports whether it is a change (the
// first subject after a join only tells the current one).
func (r *rooms) subject(room string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rm := r.m[room]
	if rm == nil || rm.state != roomJoined {
		return false
	}
	if !rm.subjectSeen {
		rm.subjectSeen = true
		return false
	}
	return true
}

// status lists every room with its state, for /-/ready.
func (r *rooms) status() (all bool, lines []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	all = true
	keys := make([]string, 0, len(r.m))
	for k := range r.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		rm := r.m[k]
		if rm.state == roomJoined {
			lines = append(lines, fmt.Sprintf("room %s: joined as %s", k, rm.cur))
			continue
		}
		all = false
		lines = append(lines, fmt.Sprintf("room %s: %s (%s)", k, rm.state, rm.why))
	}
	return all, lines
}

func bareOf(s string) string {
	if s == "" {
		return ""
	}
	j, err := jid.Parse(s)
	if err != nil {
		return ""
	}
	return j.Bare().String()
}

// occupantList lists a room's occupants, by nick.
func (r *rooms) occupantList(room string) []plugins.Occupant {
	r.mu.Lock()
	defer r.mu.Unlock()
	rm := r.m[room]
	if rm == nil {
		return nil
	}
	out := make([]plugins.Occupant, 0, len(rm.occupants))
	for nick, o := range rm.occupants {
		out = append(out, occupantInfo(room, nick, o))
	}
	slices.SortFunc(out, func(a, b plugins.Occupant) int { return strings.Compare(a.Nick, b.Nick) })
	return out
}

// markByCommand records that a room was joined by command.
func (r *rooms) markByCommand(room string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm := r.m[room]; rm != nil {
		rm.byCommand = true
	}
}

// infos describes every room for plugins (status, rooms).
func (r *rooms) infos() []plugins.RoomInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]plugins.RoomInfo, 0, len(r.m))
	for k, rm := range r.m {
		st := rm.state.String()
		if rm.state == roomIdle && r.online {
			st = "waiting"
		}
		out = append(out, plugins.RoomInfo{JID: k, Nick: rm.cur, State: st, Role: rm.role, Affiliation: rm.affiliation,
			ByCommand: rm.byCommand, Configured: !rm.byCommand, Occupants: len(rm.occupants), Error: rm.why})
	}
	slices.SortFunc(out, func(a, b plugins.RoomInfo) int { return strings.Compare(a.JID, b.JID) })
	return out
}
