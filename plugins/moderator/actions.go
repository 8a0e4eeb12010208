package moderator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"crier/internal/state"
	"crier/plugins"
	"crier/plugins/moderator/detect"
)

// strike is an occupant's decaying points in a room, and the ladder step
// last reached.
type strike struct {
	Key     string    `json:"key"` // room|identity
	Room    string    `json:"room"`
	Nick    string    `json:"nick,omitempty"`
	JID     string    `json:"jid,omitempty"`
	Points  float64   `json:"points"`
	At      time.Time `json:"at"`
	Level   int       `json:"level"`
	LevelAt time.Time `json:"level_at"`
}

// decayed is the points left at now: one whole point lost per decay
// since At.
func (s *strike) decayed(now time.Time, decay time.Duration) float64 {
	p := s.Points - float64(now.Sub(s.At)/decay)
	if p < 0 {
		return 0
	}
	return p
}

// settle takes off the points decayed by now, moving At on by the whole
// intervals taken, so that a part interval still counts next time.
func (s *strike) settle(now time.Time, decay time.Duration) {
	n := now.Sub(s.At) / decay
	if n <= 0 {
		return
	}
	s.Points -= float64(n)
	s.At = s.At.Add(n * decay)
	if s.Points <= 0 {
		s.Points, s.At = 0, now
	}
}

// Case is one moderation action, as the store keeps it and the audit
// event carries it.
type Case struct {
	ID       int64     `json:"id"`
	Time     time.Time `json:"time"`
	Room     string    `json:"room"`
	Nick     string    `json:"nick,omitempty"`
	JID      string    `json:"jid,omitempty"`
	Target   string    `json:"target"`
	Detector string    `json:"detector,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Raw      string    `json:"raw,omitempty"`
	Norm     string    `json:"norm,omitempty"`
	Steps    string    `json:"steps,omitempty"`
	Points   float64   `json:"points"`
	Total    float64   `json:"total"`
	Action   string    `json:"action"`
	Retract  string    `json:"retract,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	Reason   string    `json:"reason,omitempty"`
	By       string    `json:"by"`
	Observed bool      `json:"observed,omitempty"`
	Result   string    `json:"result"`
	Reverted string    `json:"reverted,omitempty"`
}

// pending is a timed action's end, kept as an expiring key.
type pending struct {
	Kind    string `json:"kind"` // unmute | unban | room
	Room    string `json:"room"`
	Nick    string `json:"nick,omitempty"`
	JID     string `json:"jid,omitempty"`
	Target  string `json:"target,omitempty"`
	Field   string `json:"field,omitempty"`
	Restore string `json:"restore,omitempty"`
	Case    int64  `json:"case"`
	Tries   int    `json:"tries,omitempty"`
}

// Store keys.
func caseKey(id int64) string { return fmt.Sprintf("case|%012d", id) }

func strikeKey(k string) string { return "strike|" + safeKey(k) }

func muteKey(room, target string) string { return "exp|unmute|" + safeKey(room+"|"+target) }

func banKey(room, jid string) string { return "exp|unban|" + safeKey(room+"|"+strings.ToLower(jid)) }

func bannedKey(room, jid string) string { return "ban|" + safeKey(room+"|"+strings.ToLower(jid)) }

func lockKey(room, field string) string { return "exp|room|" + safeKey(room+"|"+field) }

func permitKey(k string) string { return "permit|" + safeKey(k) }

// safeKey keeps a key under the store's limit: a long one is hashed.
func safeKey(k string) string {
	if len(k) <= 400 {
		return k
	}
	h := sha256.Sum256([]byte(k))
	return "h:" + hex.EncodeToString(h[:])
}

// putStrike stores s until its points decayed and its cooldown ended.
func putStrike(tx state.Tx, s *strike, e *engine) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	end := s.At.Add(time.Duration(s.Points*float64(e.s.Decay.Std())) + e.s.Cooldown.Std())
	if l := s.LevelAt.Add(e.s.Cooldown.Std()); l.After(end) {
		end = l
	}
	return tx.PutExpiring(strikeKey(s.Key), b, end)
}

// decision is what one offence gets.
type decision struct {
	action  string
	dur     time.Duration
	retract bool
	total   float64
	next    string
	points  float64
}

// punish adds the message's points to the sender's strikes and carries
// out the ladder's step: one punishment per message, never a lower step
// than the last within the cooldown.
func (p *Plugin) punish(e *engine, ev *plugins.Event, key string, hits []detect.Verdict, points int, dry bool, now time.Time) {
	sk := ev.Room + "|" + key
	if dry {
		sk = "dry|" + sk
	}
	p.mu.Lock()
	s, ok := p.strikes[sk]
	if !ok {
		s = &strike{Key: sk, Room: ev.Room, Level: -1, At: now}
		p.strikes[sk] = s
	}
	s.settle(now, e.s.Decay.Std())
	total := s.Points + float64(points)
	s.Points, s.Nick, s.JID = total, ev.Nick, ev.RealJID
	idx := e.step(total)
	if s.Level > idx && now.Sub(s.LevelAt) < e.s.Cooldown.Std() {
		idx = s.Level
	}
	if idx >= 0 {
		s.Level, s.LevelAt = idx, now
	}
	cp := *s
	p.mu.Unlock()
	if !dry {
		p.write(func(tx state.Tx) error { return putStrike(tx, &cp, e) })
	}
	d := decision{action: ActNone, total: total, next: e.describe(idx + 1), points: float64(points)}
	if idx >= 0 {
		d.action, d.dur = e.ladder[idx].Action, e.ladder[idx].Duration.Std()
	}
	for _, v := range hits {
		d.retract = d.retract || e.retract[v.Detector]
	}
	if d.action == ActRetract {
		d.action, d.retract = ActNone, true
	}
	p.carry(e, ev, key, hits, d, dry, now)
}

// apply carries out one action outside the ladder (a nick filter's).
func (p *Plugin) apply(e *engine, ev *plugins.Event, key string, hits []detect.Verdict, action string, dur time.Duration, total float64, dry bool, now time.Time) {
	p.carry(e, ev, key, hits, decision{action: action, dur: dur, total: total, points: total}, dry, now)
}

// newCase fills a case from the strongest finding.
func (p *Plugin) newCase(ev *plugins.Event, key string, hits []detect.Verdict, d decision, now time.Time) *Case {
	c := &Case{ID: p.nextID(), Time: now, Room: ev.Room, Nick: ev.Nick, JID: ev.RealJID, Target: key,
		Points: d.points, Total: d.total, Action: d.action, By: "auto"}
	if len(hits) > 0 {
		top := hits[0]
		var rules []string
		for _, v := range hits {
			if v.Points > top.Points {
				top = v
			}
			rules = append(rules, v.Detector+"/"+v.Rule)
		}
		c.Detector, c.Rule, c.Detail = top.Detector, top.Rule, clip(top.Detail, 200)
		c.Raw, c.Norm = clip(top.Raw, 200), clip(top.Norm, 200)
		if top.Steps != 0 {
			c.Steps = top.Steps.String()
		}
		c.Reason = strings.Join(rules, ", ")
	}
	if d.dur > 0 && (d.action == ActMute || d.action == ActTempban) {
		c.Expires = now.Add(d.dur)
	}
	return c
}

// carry carries out a decision and records it as a case.
func (p *Plugin) carry(e *engine, ev *plugins.Event, key string, hits []detect.Verdict, d decision, dry bool, now time.Time) {
	c := p.newCase(ev, key, hits, d, now)
	what := []string{}
	if d.retract {
		what = append(what, ActRetract)
	}
	if d.action != ActNone {
		what = append(what, p.describeAction(d.action, d.dur))
	}
	if len(what) == 0 {
		return
	}
	if dry {
		c.Observed, c.Result = true, "observed"
		for _, w := range what {
			p.met.actions.WithLabelValues(strings.Fields(w)[0], "observed").Inc()
		}
		p.saveCase(c)
		p.publish(c)
		p.log.Info("observe mode: would act", "case", c.ID, "room", c.Room, "nick", c.Nick, "action", strings.Join(what, "+"), "rule", c.Reason)
		p.alert(c.Room, fmt.Sprintf("moderator (observe): would %s %s in %s for %s [case %d]", strings.Join(what, " and "), c.Nick, c.Room, c.Reason, c.ID))
		return
	}
	// The case is stored before anything is asked of the server, so that
	// the answers, which come on other goroutines, find it.
	c.Result = "sent"
	if d.retract {
		c.Retract = "sent"
	}
	p.saveCase(c)
	if d.retract {
		if why := p.retract(ev, c); why != "" {
			c.Retract = "unsupported: " + why
			if rank(e.s.RetractFallback) > rank(d.action) {
				d.action = e.s.RetractFallback
				c.Action = d.action
				if d.action == ActMute {
					d.dur = p.muteDuration(e)
					c.Expires = now.Add(d.dur)
				}
			}
			cp := *c
			p.updateCase(c.ID, func(x *Case) { *x = cp })
		}
	}
	p.log.Info("moderation", "case", c.ID, "room", c.Room, "nick", c.Nick, "target", c.Target, "action", c.Action, "retract", d.retract, "rule", c.Reason, "points", c.Total)
	switch d.action {
	case ActNone:
		p.finish(c, nil)
	case ActAlert:
		p.alert(c.Room, fmt.Sprintf("moderator: %s in %s: %s [case %d]", c.Nick, c.Room, c.Reason, c.ID))
		p.finish(c, nil)
	case ActWarn:
		p.warn(e, ev, c, hits, d.next)
	case ActMute:
		p.mute(ev.Room, ev.Nick, key, c, d.dur, now)
	case ActKick:
		p.do(c, plugins.Action{Kind: plugins.ActKick, Room: ev.Room, Nick: ev.Nick, Reason: reasonText(c)}, nil)
	case ActTempban, ActBan:
		p.ban(ev.Room, ev.Nick, ev.RealJID, c, d.action, d.dur, now)
	}
}

func (p *Plugin) muteDuration(e *engine) time.Duration {
	for _, s := range e.ladder {
		if s.Action == ActMute {
			return s.Duration.Std()
		}
	}
	return 5 * time.Minute
}

func (p *Plugin) describeAction(a string, d time.Duration) string {
	if (a == ActMute || a == ActTempban) && d > 0 {
		return a + " for " + shortDur(d)
	}
	return a
}

// warn sends the warning: in the room naming the nick, or privately.
func (p *Plugin) warn(e *engine, ev *plugins.Event, c *Case, hits []detect.Verdict, next string) {
	why := "breaking the rules"
	if len(hits) > 0 {
		var ps []string
		for _, v := range hits {
			if w := phrase(&v); !slices.Contains(ps, w) {
				ps = append(ps, w)
			}
		}
		why = strings.Join(ps, ", ")
	}
	body := fmt.Sprintf("%s: warning for %s.", ev.Nick, why)
	if next != "" && next != "nothing" {
		body += " Next: " + next + "."
	}
	m := plugins.Message{To: ev.Room, Type: "groupchat", Body: body}
	if e.s.Warn == "private" {
		m = plugins.Message{To: ev.Room + "/" + ev.Nick, Type: "chat", Body: body}
	}
	if err := p.host.Send(m, func(err error) { p.finish(c, err) }); err != nil {
		p.failed(ActWarn, c.Room, c.Nick, err)
		p.finish(c, err)
	}
}

// mute revokes voice until the case expires: the end is a key that
// expires in the store, so that it comes after a restart too.
func (p *Plugin) mute(room, nick, key string, c *Case, dur time.Duration, now time.Time) {
	until := now.Add(dur)
	pe := pending{Kind: "unmute", Room: room, Nick: nick, Target: key, Case: c.ID}
	b, _ := json.Marshal(pe)
	p.mu.Lock()
	p.mutes[room+"|"+key] = until
	p.mu.Unlock()
	p.write(func(tx state.Tx) error { return tx.PutExpiring(muteKey(room, key), b, until) })
	p.do(c, plugins.Action{Kind: plugins.ActDevoice, Room: room, Nick: nick, Reason: reasonText(c)}, func() {
		p.mu.Lock()
		delete(p.mutes, room+"|"+key)
		p.mu.Unlock()
		p.write(func(tx state.Tx) error { return tx.Delete(muteKey(room, key)) })
	})
}

// ban makes the occupant an outcast; a tempban's end is an expiring key.
// A ban needs the real JID: without one the occupant is kicked instead.
func (p *Plugin) ban(room, nick, realJID string, c *Case, action string, dur time.Duration, now time.Time) {
	if realJID == "" {
		if o, ok := p.host.Occupant(room, nick); ok {
			realJID = o.RealJID
		}
	}
	if realJID == "" {
		p.failed(action, room, nick, plugins.ErrNoJID)
		p.alert(room, fmt.Sprintf("moderator: cannot %s %s in %s: the room does not show the real JID; kicking instead [case %d]", action, nick, room, c.ID))
		c.Action, c.Expires = ActKick, time.Time{}
		p.updateCase(c.ID, func(x *Case) { x.Action, x.Expires = ActKick, time.Time{} })
		p.do(c, plugins.Action{Kind: plugins.ActKick, Room: room, Nick: nick, Reason: reasonText(c)}, nil)
		return
	}
	c.JID = realJID
	var undo func()
	var until time.Time
	if action == ActTempban {
		until = now.Add(dur)
		pe := pending{Kind: "unban", Room: room, Nick: nick, JID: realJID, Case: c.ID}
		b, _ := json.Marshal(pe)
		p.write(func(tx state.Tx) error { return tx.PutExpiring(banKey(room, realJID), b, until) })
		undo = func() { p.write(func(tx state.Tx) error { return tx.Delete(banKey(room, realJID)) }) }
	}
	cp := *c
	p.doThen(c, plugins.Action{Kind: plugins.ActBan, Room: room, JID: realJID, Reason: reasonText(c)}, undo, func() {
		p.noteBan(room, realJID, until)
		p.addToList(&cp, until)
	})
}

// noteBan records a ban the server did, until until (zero: for good; a
// tempban's end is its exp|unban key, written by the caller).
func (p *Plugin) noteBan(room, j string, until time.Time) {
	k := room + "|" + strings.ToLower(j)
	p.mu.Lock()
	p.bans[k] = until
	p.mu.Unlock()
	if until.IsZero() {
		b, _ := json.Marshal(struct{ Room, JID string }{room, strings.ToLower(j)})
		p.write(func(tx state.Tx) error { return tx.Put(bannedKey(room, j), b) })
	}
}

// forgetBan forgets a ban lifted.
func (p *Plugin) forgetBan(room, j string) {
	p.mu.Lock()
	delete(p.bans, room+"|"+strings.ToLower(j))
	p.mu.Unlock()
	p.write(func(tx state.Tx) error { return tx.Delete(bannedKey(room, j)) })
}

// banAgain bans at once an occupant the moderator banned from the room
// who is in it anyway (a server that let them back in, a ban lifted by
// hand on the server while the moderator's stands); it reports whether it
// did.
func (p *Plugin) banAgain(ev *plugins.Event) bool {
	now := p.now()
	p.mu.Lock()
	until, ok := p.bans[ev.Room+"|"+strings.ToLower(ev.RealJID)]
	p.mu.Unlock()
	if !ok || !until.IsZero() && !now.Before(until) || p.observingRoom(p.engineFor(ev.Room), ev.Room) {
		return false
	}
	p.log.Warn("a banned occupant is in the room: removing them and banning again", "room", ev.Room, "nick", ev.Nick, "jid", ev.RealJID)
	// A kick removes them: a ban of a JID the server lists as an outcast
	// already changes nothing there, so it removes nobody. The ban after it
	// puts the affiliation back on a server that lost it.
	for _, a := range []plugins.Action{
		{Kind: plugins.ActKick, Room: ev.Room, Nick: ev.Nick, Reason: "banned"},
		{Kind: plugins.ActBan, Room: ev.Room, JID: ev.RealJID, Reason: "banned"},
	} {
		err := p.host.Do(a, func(err error) {
			if err != nil {
				p.failed("ban_again", ev.Room, ev.Nick, err)
				p.alert(ev.Room, fmt.Sprintf("moderator: %s is banned from %s but in it, and the %s failed: %v", ev.RealJID, ev.Room, a.Kind, err))
				return
			}
			p.met.actions.WithLabelValues("ban_again", "done").Inc()
		})
		if err != nil {
			p.failed("ban_again", ev.Room, ev.Nick, err)
		}
	}
	return true
}

// retract asks the room to retract the message; it returns why it cannot
// ("" when the request went out). A refusal that comes later is alerted.
func (p *Plugin) retract(ev *plugins.Event, c *Case) string {
	if ev.StanzaID == "" {
		why := "the room gives messages no stanza-id (no XEP-0425 moderation)"
		p.failed(ActRetract, ev.Room, ev.Nick, plugins.ErrUnsupported)
		p.alert(ev.Room, fmt.Sprintf("moderator: cannot retract %s's message in %s: %s [case %d]", ev.Nick, ev.Room, why, c.ID))
		return why
	}
	err := p.host.Do(plugins.Action{Kind: plugins.ActRetract, Room: ev.Room, StanzaID: ev.StanzaID, Reason: reasonText(c)}, func(err error) {
		if err != nil {
			p.failed(ActRetract, ev.Room, ev.Nick, err)
			p.alert(ev.Room, fmt.Sprintf("moderator: the room refused to retract %s's message in %s: %v [case %d]", ev.Nick, ev.Room, err, c.ID))
			p.updateCase(c.ID, func(x *Case) { x.Retract = "failed: " + err.Error() })
			return
		}
		p.met.actions.WithLabelValues(ActRetract, "done").Inc()
		p.updateCase(c.ID, func(x *Case) { x.Retract = "done" })
	})
	if err != nil {
		p.failed(ActRetract, ev.Room, ev.Nick, err)
		p.alert(ev.Room, fmt.Sprintf("moderator: cannot retract %s's message in %s: %v [case %d]", ev.Nick, ev.Room, err, c.ID))
		return err.Error()
	}
	return ""
}

// do carries out a room action for a case; undo runs when it was refused
// or failed.
func (p *Plugin) do(c *Case, a plugins.Action, undo func()) { p.doThen(c, a, undo, nil) }

// doThen is do with ok, run once the server did the action.
func (p *Plugin) doThen(c *Case, a plugins.Action, undo, ok func()) {
	what := c.Action
	err := p.host.Do(a, func(err error) {
		if err == nil && ok != nil {
			ok()
		}
		if err != nil {
			p.failed(what, c.Room, c.Nick, err)
			p.alert(c.Room, fmt.Sprintf("moderator: %s of %s in %s failed: %v [case %d]", what, c.Nick, c.Room, err, c.ID))
			if undo != nil {
				undo()
			}
		}
		p.finish(c, err)
	})
	if err != nil {
		p.failed(what, c.Room, c.Nick, err)
		p.alert(c.Room, fmt.Sprintf("moderator: cannot %s %s in %s: %v [case %d]", what, c.Nick, c.Room, err, c.ID))
		if undo != nil {
			undo()
		}
		p.updateCase(c.ID, func(x *Case) { x.Result = "refused: " + err.Error() })
		c.Result = "refused: " + err.Error()
		p.publish(c)
	}
}

// finish records an action's outcome and publishes the case.
func (p *Plugin) finish(c *Case, err error) {
	res := "done"
	if err != nil {
		res = "failed: " + err.Error()
		p.met.actions.WithLabelValues(c.Action, "failed").Inc()
	} else {
		p.met.actions.WithLabelValues(c.Action, "done").Inc()
	}
	p.updateCase(c.ID, func(x *Case) { x.Result = res })
	cp := *c
	cp.Result = res
	p.publish(&cp)
}

// failed counts and logs a failure to act.
func (p *Plugin) failed(action, room, nick string, err error) {
	reason := "other"
	switch {
	case errors.Is(err, plugins.ErrNoRights):
		reason = "no_rights"
	case errors.Is(err, plugins.ErrUnsupported):
		reason = "unsupported"
	case errors.Is(err, plugins.ErrNoJID):
		reason = "no_jid"
	case errors.Is(err, plugins.ErrNotRoom), errors.Is(err, plugins.ErrUnknownOccupant):
		reason = "not_room"
	case errors.Is(err, plugins.ErrBusy), errors.Is(err, plugins.ErrStopped):
		reason = "busy"
	case errors.Is(err, errStore):
		reason = "store"
	case err != nil:
		reason = "server"
	}
	p.met.failures.WithLabelValues(action, reason).Inc()
	if reason != "server" {
		p.met.actions.WithLabelValues(action, "refused").Inc()
	}
	p.log.Warn("moderation action failed", "action", action, "room", room, "nick", nick, "err", err)
}

// roomAction makes the room members-only or moderated for a while (a join
// wave, a raid); the change is undone by an expiring key.
func (p *Plugin) roomAction(e *engine, ev *plugins.Event, v *detect.Verdict, action string, dur time.Duration, observed bool, now time.Time) {
	c := &Case{ID: 0, Time: now, Room: ev.Room, Target: "room", Detector: v.Detector, Rule: v.Rule, Detail: v.Detail,
		Action: action, By: "auto", Reason: v.Detector + "/" + v.Rule}
	if action == ActAlert {
		c.ID = p.nextID()
		c.Result = "done"
		p.saveCase(c)
		p.publish(c)
		p.alert(ev.Room, fmt.Sprintf("moderator: %s in %s: %s [case %d]", v.Detector, ev.Room, v.Detail, c.ID))
		return
	}
	field := roomFields[action]
	lk := ev.Room + "|" + field
	p.mu.Lock()
	if until, ok := p.locks[lk]; ok && now.Before(until) {
		p.mu.Unlock()
		return
	}
	p.locks[lk] = now.Add(dur)
	p.mu.Unlock()
	c.ID = p.nextID()
	c.Expires = now.Add(dur)
	if observed {
		c.Observed, c.Result = true, "observed"
		p.met.actions.WithLabelValues(action, "observed").Inc()
		p.saveCase(c)
		p.publish(c)
		p.alert(ev.Room, fmt.Sprintf("moderator (observe): would make %s %s for %s: %s [case %d]", ev.Room, strings.ReplaceAll(action, "_", "-"), shortDur(dur), v.Detail, c.ID))
		return
	}
	c.Result = "sent"
	p.saveCase(c)
	pe := pending{Kind: "room", Room: ev.Room, Field: field, Restore: "0", Case: c.ID}
	b, _ := json.Marshal(pe)
	p.write(func(tx state.Tx) error { return tx.PutExpiring(lockKey(ev.Room, field), b, now.Add(dur)) })
	p.alert(ev.Room, fmt.Sprintf("moderator: %s: %s is %s for %s [case %d]", v.Detail, ev.Room, strings.ReplaceAll(action, "_", "-"), shortDur(dur), c.ID))
	if action == RoomSlowMode {
		p.log.Info("slow mode for a while", "room", ev.Room, "interval", e.s.SlowMode.RaidInterval.Std(), "for", dur, "case", c.ID)
		p.finish(c, nil)
		return
	}
	p.do(c, plugins.Action{Kind: plugins.ActConfigure, Room: ev.Room, Fields: map[string]string{field: "1"}, Reason: v.Detail}, func() {
		p.mu.Lock()
		delete(p.locks, lk)
		p.mu.Unlock()
		p.write(func(tx state.Tx) error { return tx.Delete(lockKey(ev.Room, field)) })
	})
}

// expired ends a timed action whose key expired: voice back, unban, the
// room's configuration back. When the bot cannot act now (not in the
// room, not connected), it tries again later.
func (p *Plugin) expired(key string, val []byte) {
	if strings.HasPrefix(key, "case|") {
		p.met.pruned.Inc()
		return
	}
	if !strings.HasPrefix(key, "exp|") {
		return
	}
	var pe pending
	if err := json.Unmarshal(val, &pe); err != nil {
		p.log.Warn("bad expiry record", "key", key, "err", err)
		return
	}
	var a plugins.Action
	var what string
	switch pe.Kind {
	case "unmute":
		p.mu.Lock()
		delete(p.mutes, pe.Room+"|"+pe.Target)
		p.mu.Unlock()
		nick := p.nickOf(pe.Room, pe.Target, pe.Nick)
		if nick == "" {
			return // gone: voice is given again on the next join
		}
		a, what = plugins.Action{Kind: plugins.ActVoice, Room: pe.Room, Nick: nick, Reason: "mute ended"}, "unmute"
	case "unban":
		p.unmarkApplied(pe.JID, pe.Room)
		p.forgetBan(pe.Room, pe.JID)
		a, what = plugins.Action{Kind: plugins.ActUnban, Room: pe.Room, JID: pe.JID, Reason: "tempban ended"}, "unban"
	case "room":
		p.mu.Lock()
		delete(p.locks, pe.Room+"|"+pe.Field)
		p.mu.Unlock()
		if pe.Field == RoomSlowMode {
			p.met.actions.WithLabelValues("restore", "done").Inc()
			p.log.Info("timed action ended", "action", "slowmode", "room", pe.Room, "case", pe.Case)
			return
		}
		a, what = plugins.Action{Kind: plugins.ActConfigure, Room: pe.Room, Fields: map[string]string{pe.Field: pe.Restore}}, "restore"
	default:
		return
	}
	err := p.host.Do(a, func(err error) {
		if err != nil {
			p.failed(what, pe.Room, pe.Nick, err)
			p.alert(pe.Room, fmt.Sprintf("moderator: %s of %s in %s failed: %v [case %d]", what, orNone(pe.Nick+pe.JID), pe.Room, err, pe.Case))
			return
		}
		p.met.actions.WithLabelValues(what, "done").Inc()
		p.log.Info("timed action ended", "action", what, "room", pe.Room, "nick", pe.Nick, "jid", pe.JID, "case", pe.Case)
	})
	if err == nil {
		return
	}
	retry := errors.Is(err, plugins.ErrNotRoom) || errors.Is(err, plugins.ErrBusy) || errors.Is(err, plugins.ErrStopped) || errors.Is(err, plugins.ErrNoRights)
	if retry && pe.Tries < 120 {
		pe.Tries++
		b, _ := json.Marshal(pe)
		at := p.now().Add(30 * time.Second)
		if pe.Kind == "unmute" {
			p.mu.Lock()
			p.mutes[pe.Room+"|"+pe.Target] = at
			p.mu.Unlock()
		}
		p.write(func(tx state.Tx) error { return tx.PutExpiring(key, b, at) })
		return
	}
	p.failed(what, pe.Room, pe.Nick, err)
	p.alert(pe.Room, fmt.Sprintf("moderator: cannot %s %s in %s: %v [case %d]", what, orNone(pe.Nick+pe.JID), pe.Room, err, pe.Case))
}

// nickOf finds the current nick of an occupant by identity.
func (p *Plugin) nickOf(room, target, nick string) string {
	kind, id, _ := strings.Cut(target, ":")
	for _, o := range p.host.Occupants(room) {
		switch {
		case kind == "oid" && o.OccupantID == id,
			kind == "jid" && strings.EqualFold(o.RealJID, id),
			kind == "nick" && o.Nick == id:
			return o.Nick
		}
	}
	if _, ok := p.host.Occupant(room, nick); ok && kind == "nick" {
		return nick
	}
	return ""
}

// nextID allocates a case ID.
func (p *Plugin) nextID() int64 {
	p.mu.Lock()
	p.seq++
	id := p.seq
	p.mu.Unlock()
	p.write(func(tx state.Tx) error {
		if v, ok := tx.Get("seq"); ok {
			if n, _ := strconv.ParseInt(string(v), 10, 64); n >= id {
				return nil
			}
		}
		return tx.Put("seq", []byte(strconv.FormatInt(id, 10)))
	})
	return id
}

func (p *Plugin) saveCase(c *Case) {
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	keep := p.cfg.CaseRetention.Std()
	p.write(func(tx state.Tx) error {
		if keep > 0 {
			return tx.PutExpiring(caseKey(c.ID), b, c.Time.Add(keep))
		}
		return tx.Put(caseKey(c.ID), b)
	})
}

// retainCases gives every stored case the end case_retention gives it
// (cases kept before retention was set or changed), or none when cases
// are kept for good. Cases past their end go at once. The changes are
// committed a few hundred at a time: a KV store takes at most a thousand
// writes in one commit.
func (p *Plugin) retainCases() error {
	keep := p.cfg.CaseRetention.Std()
	type change struct {
		key string
		at  time.Time // zero: no end
	}
	var todo []change
	err := p.ns.View(func(tx state.Tx) error {
		return tx.ForEach("case|", func(k string, v []byte) error {
			var c Case
			if json.Unmarshal(v, &c) != nil {
				return nil
			}
			at, has := tx.Expiry(k)
			switch {
			case keep > 0 && (!has || !at.Equal(c.Time.Add(keep))):
				todo = append(todo, change{k, c.Time.Add(keep)})
			case keep <= 0 && has:
				todo = append(todo, change{k, time.Time{}})
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	const batch = 200
	for len(todo) > 0 {
		n := min(batch, len(todo))
		part := todo[:n]
		todo = todo[n:]
		err := p.ns.Update(func(tx state.Tx) error {
			for _, ch := range part {
				v, ok := tx.Get(ch.key)
				if !ok {
					continue
				}
				var err error
				if ch.at.IsZero() {
					err = tx.Put(ch.key, v)
				} else {
					err = tx.PutExpiring(ch.key, v, ch.at)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// updateCase changes a stored case.
func (p *Plugin) updateCase(id int64, fn func(*Case)) {
	p.write(func(tx state.Tx) error {
		v, ok := tx.Get(caseKey(id))
		if !ok {
			return nil
		}
		var c Case
		if json.Unmarshal(v, &c) != nil {
			return nil
		}
		fn(&c)
		b, err := json.Marshal(&c)
		if err != nil {
			return nil
		}
		if at, ok := tx.Expiry(caseKey(id)); ok {
			return tx.PutExpiring(caseKey(id), b, at)
		}
		return tx.Put(caseKey(id), b)
	})
}

// publish sends the case to the NATS subject, when one is configured.
func (p *Plugin) publish(c *Case) {
	if p.cfg.Subject == "" {
		return
	}
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	if err := p.host.Publish(p.cfg.Subject, b); err != nil {
		p.met.failures.WithLabelValues("publish", "unsupported").Inc()
		p.log.Debug("audit event not published", "subject", p.cfg.Subject, "err", err)
	}
}

// alert tells the alert target, at most 20 times a minute (a raid would
// otherwise flood the moderators too).
func (p *Plugin) alert(room, text string) {
	if len(p.cfg.Alert) == 0 {
		return
	}
	now := p.now()
	p.mu.Lock()
	i := 0
	for i < len(p.alerts) && now.Sub(p.alerts[i]) > time.Minute {
		i++
	}
	p.alerts = p.alerts[i:]
	if len(p.alerts) >= 20 {
		p.mu.Unlock()
		p.met.failures.WithLabelValues("alert", "busy").Inc()
		return
	}
	p.alerts = append(p.alerts, now)
	p.mu.Unlock()
	for _, to := range p.cfg.Alert {
		m := plugins.Message{To: to, Type: "chat", Body: text}
		if p.host.IsRoom(to) {
			m.Type = "groupchat"
		}
		if err := p.host.Send(m, nil); err != nil {
			p.met.failures.WithLabelValues("alert", "busy").Inc()
			p.log.Warn("alert not sent", "to", to, "err", err)
		}
	}
}

// reasonText is the <reason/> of a room action.
func reasonText(c *Case) string {
	r := c.Reason
	if r == "" {
		r = c.Action
	}
	return fmt.Sprintf("%s [case %d]", r, c.ID)
}

// clip shortens s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func sortStrings(s []string) { slices.Sort(s) }
