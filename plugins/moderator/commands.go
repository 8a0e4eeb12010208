package moderator

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"crier/internal/config"
	"crier/internal/state"
	"crier/plugins"
)

// Commands are the moderator's commands, for room moderators in their
// room (or anyone granted the moderator level), through the commands
// plugin: chat, ad-hoc and help.
func (p *Plugin) Commands() []plugins.Command {
	room := plugins.Arg{Name: "room", Label: "Room", Desc: "the room (default: the room the command is given in)", Kind: plugins.ArgJID}
	who := plugins.Arg{Name: "who", Label: "Nick or JID", Desc: "an occupant's nick or a bare JID", Required: true}
	nick := plugins.Arg{Name: "nick", Label: "Nick", Desc: "an occupant's nick", Required: true}
	id := plugins.Arg{Name: "id", Label: "Case", Desc: "a case number", Kind: plugins.ArgInt, Required: true}
	jidArg := plugins.Arg{Name: "jid", Label: "JID", Desc: "a bare JID", Kind: plugins.ArgJID, Required: true}
	mod := func(c plugins.Command) plugins.Command { c.Level = plugins.Moderator; return c }
	return []plugins.Command{
		mod(plugins.Command{Name: "case", Summary: "show a moderation case",
			Args: []plugins.Arg{id}, Example: plugins.Example{Line: "case 1", Want: "case"}, Run: p.runCase}),
		mod(plugins.Command{Name: "why", Summary: "show an occupant's strikes, mute and last cases",
			Args: []plugins.Arg{who, room}, Example: plugins.Example{Line: "why alice", Want: "alice"}, Run: p.runWhy}),
		mod(plugins.Command{Name: "history", Summary: "list the cases of a JID or nick in the room",
			Args: []plugins.Arg{who, room}, Example: plugins.Example{Line: "history alice@example.org", Want: "alice@example.org"}, Run: p.runHistory}),
		mod(plugins.Command{Name: "unban", Summary: "lift a ban (and its timer)",
			Args: []plugins.Arg{jidArg, room}, Example: plugins.Example{Line: "unban alice@example.org", Want: "unban"}, Run: p.runUnban}),
		mod(plugins.Command{Name: "unmute", Summary: "give voice back (and stop the timer)",
			Args: []plugins.Arg{nick, room}, Example: plugins.Example{Line: "unmute alice", Want: "alice"}, Run: p.runUnmute}),
		mod(plugins.Command{Name: "pardon", Summary: "clear an occupant's strikes",
			Args: []plugins.Arg{who, room}, Example: plugins.Example{Line: "pardon alice", Want: "alice"}, Run: p.runPardon}),
		mod(plugins.Command{Name: "revert", Summary: "undo a case: voice back, unban, room setting back, strikes off",
			Args: []plugins.Arg{id}, Destructive: true, Example: plugins.Example{Line: "revert 1", Want: "case"}, Run: p.runRevert}),
		mod(plugins.Command{Name: "tempban", Summary: "ban an occupant for a time",
			Args: []plugins.Arg{nick, {Name: "duration", Label: "Duration", Desc: "how long (10m, 2h)", Kind: plugins.ArgDuration, Required: true},
				{Name: "reason", Label: "Reason", Desc: "why", Rest: true}, room},
			Example: plugins.Example{Line: "tempban alice 1h spam", Want: "alice"}, Run: p.runTempban}),
		mod(plugins.Command{Name: "ban", Summary: "ban an occupant or a JID (on the ban list when it is enabled)",
			Args: []plugins.Arg{who, {Name: "reason", Label: "Reason", Desc: "why", Rest: true}, room}, Destructive: true,
			Example: plugins.Example{Line: "ban alice@example.org spam", Want: "alice@example.org"}, Run: p.runBan}),
		mod(plugins.Command{Name: "banlist", Summary: "list the shared ban list's entries and the cases that put them there",
			Example: plugins.Example{Line: "banlist", Want: "ban list"}, Run: p.runBanList}),
		mod(plugins.Command{Name: "slowmode", Summary: "slow mode in the room: one message per occupant per DURATION, off, or the config's (default)",
			Args:    []plugins.Arg{{Name: "interval", Label: "Interval", Desc: "a duration (30s), off, or default; empty: show"}, room},
			Example: plugins.Example{Line: "slowmode 30s", Want: "slow mode"}, Run: p.runSlowMode}),
		mod(plugins.Command{Name: "observe", Summary: "observe mode in the room: report, do nothing (on|off)",
			Args:    []plugins.Arg{{Name: "on", Label: "Observe", Desc: "on or off", Kind: plugins.ArgBool, Required: true}, room},
			Example: plugins.Example{Line: "observe on", Want: "observe"}, Run: p.runObserve}),
		mod(plugins.Command{Name: "explain", Summary: "show what every detector makes of a text",
			Args:    []plugins.Arg{{Name: "text", Label: "Text", Desc: "the text to check", Rest: true, Required: true}, room},
			Example: plugins.Example{Line: "explain free coins", Want: "normalised"}, Run: p.runExplain}),
		mod(plugins.Command{Name: "permit", Summary: "leave an occupant alone for a while (default 10m)",
			Args:    []plugins.Arg{nick, {Name: "duration", Label: "Duration", Desc: "how long (default 10m)", Kind: plugins.ArgDuration}, room},
			Example: plugins.Example{Line: "permit alice 5m", Want: "alice"}, Run: p.runPermit}),
	}
}

// roomOf is the room a command is about: the room argument, which must be
// a room the bot is in, or the room the command was given in.
func (p *Plugin) roomOf(c *plugins.Call) (string, error) {
	if r := c.Arg("room"); r != "" {
		if !p.host.IsRoom(r) {
			return "", fmt.Errorf("%w: %q", plugins.ErrNotRoom, r)
		}
		return r, nil
	}
	if c.Room != "" {
		return c.Room, nil
	}
	return "", ErrNoRoom
}

// byWhom names the caller in cases.
func byWhom(c *plugins.Call) string {
	switch {
	case c.RealJID != "":
		return c.RealJID
	case c.Nick != "":
		return c.Nick
	}
	return c.From
}

// target resolves a nick or JID in a room to the key of its counters.
func (p *Plugin) target(room, who string) (key, nick, realJID string) {
	if o, ok := p.host.Occupant(room, who); ok {
		return identity(o.OccupantID, o.RealJID, o.Nick), o.Nick, o.RealJID
	}
	if strings.Contains(who, "@") && isBareJID(who) {
		return identity("", who, ""), "", who
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.strikes {
		if s.Room == room && s.Nick == who {
			return strings.TrimPrefix(s.Key, room+"|"), who, s.JID
		}
	}
	return identity("", "", who), who, ""
}

// cases returns the stored cases that keep returns true for, newest
// first, at most max.
func (p *Plugin) cases(max int, keep func(*Case) bool) ([]Case, error) {
	p.flush()
	var out []Case
	err := p.ns.View(func(tx state.Tx) error {
		return tx.ForEach("case|", func(_ string, v []byte) error {
			var c Case
			if json.Unmarshal(v, &c) == nil && keep(&c) {
				out = append(out, c)
			}
			return nil
		})
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, err
}

func (p *Plugin) getCase(id int64) (Case, error) {
	p.flush()
	var c Case
	found := false
	err := p.ns.View(func(tx state.Tx) error {
		v, ok := tx.Get(caseKey(id))
		if ok {
			found = json.Unmarshal(v, &c) == nil
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	if !found {
		return c, fmt.Errorf("%w: %d", ErrNoCase, id)
	}
	return c, nil
}

// describeCase is a case on a few lines.
func describeCase(c *Case) string {
	var b strings.Builder
	fmt.Fprintf(&b, "case %d, %s, in %s: %s", c.ID, c.Time.UTC().Format(time.RFC3339), c.Room, c.Action)
	if c.Retract != "" {
		fmt.Fprintf(&b, " (retract: %s)", c.Retract)
	}
	target := c.Nick
	if c.JID != "" {
		target += " <" + c.JID + ">"
	}
	fmt.Fprintf(&b, " of %s [%s]", strings.TrimSpace(target), c.Target)
	if !c.Expires.IsZero() {
		fmt.Fprintf(&b, " until %s", c.Expires.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "\nby %s; result: %s", c.By, c.Result)
	if c.Observed {
		b.WriteString(" (observe mode)")
	}
	if c.Reverted != "" {
		fmt.Fprintf(&b, "; reverted by %s", c.Reverted)
	}
	if c.Reason != "" {
		fmt.Fprintf(&b, "\nrule: %s; %g points (total %.1f)", c.Reason, c.Points, c.Total)
	}
	if c.Detail != "" {
		fmt.Fprintf(&b, "\nseen: %s", c.Detail)
	}
	if c.Raw != "" || c.Norm != "" {
		fmt.Fprintf(&b, "\nexcerpt: %q as %q", c.Raw, c.Norm)
		if c.Steps != "" {
			fmt.Fprintf(&b, " (%s)", c.Steps)
		}
	}
	return b.String()
}

func (p *Plugin) runCase(_ context.Context, call *plugins.Call) (plugins.Reply, error) {
	id, _ := strconv.ParseInt(call.Arg("id"), 10, 64)
	c, err := p.getCase(id)
	if err != nil {
		return plugins.Reply{}, err
	}
	if call.Room != "" && c.Room != call.Room && call.Level < plugins.Admin {
		return plugins.Reply{}, fmt.Errorf("%w: %d (not in this room)", ErrNoCase, id)
	}
	return plugins.Reply{Text: describeCase(&c)}, nil
}

func (p *Plugin) runWhy(_ context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	who := call.Arg("who")
	key, nick, realJID := p.target(room, who)
	e := p.engineFor(room)
	now := p.now()
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s [%s]", who, room, key)
	p.mu.Lock()
	s, ok := p.strikes[room+"|"+key]
	var pts float64
	level := -1
	if ok {
		pts, level = s.decayed(now, e.s.Decay.Std()), s.Level
	}
	mute, muted := p.mutes[room+"|"+key]
	permit, permitted := p.permits[room+"|"+key]
	p.mu.Unlock()
	fmt.Fprintf(&b, ": %.1f strike points", pts)
	if level >= 0 {
		fmt.Fprintf(&b, ", last step %s", e.describe(level))
	}
	if muted && now.Before(mute) {
		fmt.Fprintf(&b, ", muted until %s", mute.UTC().Format(time.RFC3339))
	}
	if permitted && now.Before(permit) {
		fmt.Fprintf(&b, ", permitted until %s", permit.UTC().Format(time.RFC3339))
	}
	list, err := p.cases(5, func(c *Case) bool {
		return c.Room == room && (c.Target == key || nick != "" && c.Nick == nick || realJID != "" && strings.EqualFold(c.JID, realJID))
	})
	if err != nil {
		return plugins.Reply{}, err
	}
	for _, c := range list {
		fmt.Fprintf(&b, "\ncase %d: %s for %s (%s)", c.ID, c.Action, c.Reason, c.Result)
	}
	if len(list) == 0 {
		b.WriteString("\nno cases")
	}
	return plugins.Reply{Text: b.String()}, nil
}

func (p *Plugin) runHistory(_ context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	who := call.Arg("who")
	key, nick, realJID := p.target(room, who)
	list, err := p.cases(50, func(c *Case) bool {
		return c.Room == room && (c.Target == key || strings.EqualFold(c.JID, who) || nick != "" && c.Nick == nick || realJID != "" && strings.EqualFold(c.JID, realJID))
	})
	if err != nil {
		return plugins.Reply{}, err
	}
	t := &plugins.Table{Columns: []string{"case", "time", "action", "rule", "by", "result"}}
	for _, c := range list {
		t.Rows = append(t.Rows, []string{strconv.FormatInt(c.ID, 10), c.Time.UTC().Format(time.RFC3339), c.Action, c.Reason, c.By, c.Result})
	}
	return plugins.Reply{Text: fmt.Sprintf("cases of %s in %s: %d", who, room, len(list)), Table: t}, nil
}

// manual records a case done by a command.
func (p *Plugin) manual(call *plugins.Call, room, nick, realJID, key, action, reason string, expires time.Time) *Case {
	c := &Case{ID: p.nextID(), Time: p.now(), Room: room, Nick: nick, JID: realJID, Target: key, Action: action,
		By: byWhom(call), Reason: reason, Expires: expires, Result: "sent"}
	p.saveCase(c)
	return c
}

// wait runs an action and waits (within ctx) for the server's answer.
func (p *Plugin) wait(ctx context.Context, c *Case, a plugins.Action) error {
	done := make(chan error, 1)
	if err := p.host.Do(a, func(err error) { done <- err }); err != nil {
		p.failed(c.Action, c.Room, c.Nick, err)
		p.updateCase(c.ID, func(x *Case) { x.Result = "refused: " + err.Error() })
		return err
	}
	select {
	case err := <-done:
		p.finish(c, err)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Plugin) runUnban(ctx context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	j := strings.ToLower(call.Arg("jid"))
	p.forgetBan(room, j)
	p.write(func(tx state.Tx) error { return tx.Delete(banKey(room, j)) })
	c := p.manual(call, room, "", j, identity("", j, ""), "unban", "", time.Time{})
	if err := p.wait(ctx, c, plugins.Action{Kind: plugins.ActUnban, Room: room, JID: j, Reason: "unban by " + c.By}); err != nil {
		return plugins.Reply{}, err
	}
	extra := ""
	if on, err := p.removeFromList(j, room); err != nil {
		return plugins.Reply{}, err
	} else if on {
		extra = "; off the ban list, lifted in every room"
	}
	return plugins.Reply{Text: fmt.Sprintf("unbanned %s in %s [case %d]%s", j, room, c.ID, extra)}, nil
}

func (p *Plugin) runUnmute(ctx context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	key, nick, realJID := p.target(room, call.Arg("nick"))
	p.endMute(room, key)
	c := p.manual(call, room, nick, realJID, key, "unmute", "", time.Time{})
	if err := p.wait(ctx, c, plugins.Action{Kind: plugins.ActVoice, Room: room, Nick: nick, Reason: "unmute by " + c.By}); err != nil {
		return plugins.Reply{}, err
	}
	return plugins.Reply{Text: fmt.Sprintf("%s has voice again in %s [case %d]", nick, room, c.ID)}, nil
}

func (p *Plugin) endMute(room, key string) {
	p.mu.Lock()
	delete(p.mutes, room+"|"+key)
	p.mu.Unlock()
	p.write(func(tx state.Tx) error { return tx.Delete(muteKey(room, key)) })
}

func (p *Plugin) runPardon(_ context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	key, nick, realJID := p.target(room, call.Arg("who"))
	p.pardon(room, key, 0)
	c := p.manual(call, room, nick, realJID, key, "pardon", "", time.Time{})
	p.finish(c, nil)
	return plugins.Reply{Text: fmt.Sprintf("strikes of %s in %s cleared [case %d]", call.Arg("who"), room, c.ID)}, nil
}

// pardon takes points off a strike (all of them when points is 0).
func (p *Plugin) pardon(room, key string, points float64) {
	sk := room + "|" + key
	e := p.engineFor(room)
	p.mu.Lock()
	s, ok := p.strikes[sk]
	if ok && points > 0 {
		s.settle(p.now(), e.s.Decay.Std())
		s.Points -= points
		if s.Points > 0 {
			s.Level = e.step(s.Points)
			cp := *s
			p.mu.Unlock()
			p.write(func(tx state.Tx) error { return putStrike(tx, &cp, e) })
			return
		}
	}
	delete(p.strikes, sk)
	p.mu.Unlock()
	p.write(func(tx state.Tx) error { return tx.Delete(strikeKey(sk)) })
}

func (p *Plugin) runRevert(ctx context.Context, call *plugins.Call) (plugins.Reply, error) {
	id, _ := strconv.ParseInt(call.Arg("id"), 10, 64)
	c, err := p.getCase(id)
	if err != nil {
		return plugins.Reply{}, err
	}
	if call.Room != "" && c.Room != call.Room && call.Level < plugins.Admin {
		return plugins.Reply{}, fmt.Errorf("%w: %d (not in this room)", ErrNoCase, id)
	}
	if c.Reverted != "" {
		return plugins.Reply{Text: fmt.Sprintf("case %d was reverted already by %s", id, c.Reverted)}, nil
	}
	undone := "strikes taken off"
	var a *plugins.Action
	switch c.Action {
	case ActMute:
		p.endMute(c.Room, c.Target)
		nick := p.nickOf(c.Room, c.Target, c.Nick)
		if nick != "" {
			a = &plugins.Action{Kind: plugins.ActVoice, Room: c.Room, Nick: nick, Reason: fmt.Sprintf("case %d reverted", id)}
		}
		undone = "voice back, " + undone
	case ActTempban, ActBan:
		// Reverting the case that put a JID on the ban list takes it
		// off (lifted everywhere); reverting the list's ban in one room
		// lifts it there only: the room stays marked as applied, so the
		// list does not ban again.
		pre := ""
		if en, ok := p.listed(c.JID); ok && en.Case == c.ID && en.Origin == p.core.BotJID && c.By != "banlist" {
			if on, err := p.removeFromList(c.JID, c.Room); err != nil {
				return plugins.Reply{}, err
			} else if on {
				pre = "off the ban list, "
			}
		}
		if c.JID != "" {
			p.forgetBan(c.Room, c.JID)
			p.write(func(tx state.Tx) error { return tx.Delete(banKey(c.Room, c.JID)) })
			a = &plugins.Action{Kind: plugins.ActUnban, Room: c.Room, JID: c.JID, Reason: fmt.Sprintf("case %d reverted", id)}
			undone = pre + "unbanned, " + undone
		}
	case RoomMembersOnly, RoomModerated, RoomSlowMode:
		field := roomFields[c.Action]
		p.mu.Lock()
		delete(p.locks, c.Room+"|"+field)
		p.mu.Unlock()
		p.write(func(tx state.Tx) error { return tx.Delete(lockKey(c.Room, field)) })
		undone = "room setting back"
		if c.Action != RoomSlowMode {
			a = &plugins.Action{Kind: plugins.ActConfigure, Room: c.Room, Fields: map[string]string{field: "0"}}
		}
	}
	if c.Target != "room" && c.Points > 0 {
		p.pardon(c.Room, c.Target, c.Points)
	}
	if a != nil {
		rc := p.manual(call, c.Room, c.Nick, c.JID, c.Target, "revert", fmt.Sprintf("case %d", id), time.Time{})
		if err := p.wait(ctx, rc, *a); err != nil {
			return plugins.Reply{}, err
		}
	}
	by := byWhom(call)
	p.updateCase(id, func(x *Case) { x.Reverted = by })
	return plugins.Reply{Text: fmt.Sprintf("case %d reverted: %s", id, undone)}, nil
}

func (p *Plugin) runTempban(ctx context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	d, err := time.ParseDuration(call.Arg("duration"))
	if err != nil || d <= 0 {
		return plugins.Reply{}, fmt.Errorf("moderator: %q is not a positive duration", call.Arg("duration"))
	}
	key, nick, realJID := p.target(room, call.Arg("nick"))
	if realJID == "" {
		return plugins.Reply{}, fmt.Errorf("%w: %s in %s", plugins.ErrNoJID, call.Arg("nick"), room)
	}
	until := p.now().Add(d)
	c := p.manual(call, room, nick, realJID, key, ActTempban, call.Arg("reason"), until)
	b, _ := json.Marshal(pending{Kind: "unban", Room: room, Nick: nick, JID: realJID, Case: c.ID})
	p.write(func(tx state.Tx) error { return tx.PutExpiring(banKey(room, realJID), b, until) })
	reason := call.Arg("reason")
	if reason == "" {
		reason = "tempban by " + c.By
	}
	if err := p.wait(ctx, c, plugins.Action{Kind: plugins.ActBan, Room: room, JID: realJID, Reason: fmt.Sprintf("%s [case %d]", reason, c.ID)}); err != nil {
		p.write(func(tx state.Tx) error { return tx.Delete(banKey(room, realJID)) })
		return plugins.Reply{}, err
	}
	p.noteBan(room, realJID, until)
	p.addToList(c, until)
	return plugins.Reply{Text: fmt.Sprintf("%s banned from %s for %s [case %d]", nick, room, shortDur(d), c.ID)}, nil
}

func (p *Plugin) runBan(ctx context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	key, nick, realJID := p.target(room, call.Arg("who"))
	if realJID == "" {
		return plugins.Reply{}, fmt.Errorf("%w: %s in %s", plugins.ErrNoJID, call.Arg("who"), room)
	}
	reason := call.Arg("reason")
	c := p.manual(call, room, nick, realJID, key, ActBan, reason, time.Time{})
	if reason == "" {
		reason = "ban by " + c.By
	}
	// A ban outlives any tempban's timer.
	p.write(func(tx state.Tx) error { return tx.Delete(banKey(room, realJID)) })
	if err := p.wait(ctx, c, plugins.Action{Kind: plugins.ActBan, Room: room, JID: realJID, Reason: fmt.Sprintf("%s [case %d]", reason, c.ID)}); err != nil {
		return plugins.Reply{}, err
	}
	p.noteBan(room, realJID, time.Time{})
	p.addToList(c, time.Time{})
	extra := ""
	if p.list != nil {
		extra = "; on the ban list"
	}
	return plugins.Reply{Text: fmt.Sprintf("%s banned from %s [case %d]%s", realJID, room, c.ID, extra)}, nil
}

func (p *Plugin) runBanList(_ context.Context, _ *plugins.Call) (plugins.Reply, error) {
	if p.list == nil {
		return plugins.Reply{Text: "the ban list is off ([moderator.banlist] enabled = false)"}, nil
	}
	list := p.listEntries()
	t := &plugins.Table{Columns: []string{"jid", "case", "room", "by", "since", "until", "reason"}}
	for _, en := range list {
		until := "-"
		if !en.Expires.IsZero() {
			until = en.Expires.UTC().Format(time.RFC3339)
		}
		c := strconv.FormatInt(en.Case, 10)
		if en.Origin != "" && en.Origin != p.core.BotJID {
			c += " of " + en.Origin
		}
		t.Rows = append(t.Rows, []string{en.JID, c, en.Room, en.By, en.Time.UTC().Format(time.RFC3339), until, en.Reason})
	}
	where := "this instance's"
	if p.list.shared {
		where = "shared in bucket " + p.cfg.BanList.Bucket
	}
	return plugins.Reply{Text: fmt.Sprintf("ban list (%s): %d entries", where, len(list)), Table: t}, nil
}

func (p *Plugin) runSlowMode(_ context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	arg := strings.TrimSpace(call.Arg("interval"))
	switch arg {
	case "":
		iv := p.slowInterval(p.engineFor(room), room)
		if iv <= 0 {
			return plugins.Reply{Text: "slow mode is off in " + room}, nil
		}
		return plugins.Reply{Text: fmt.Sprintf("slow mode in %s: one message per %s", room, shortDur(iv))}, nil
	case "default":
		p.mu.Lock()
		delete(p.slowRoom, room)
		p.mu.Unlock()
		p.write(func(tx state.Tx) error { return tx.Delete("slow|" + room) })
		iv := p.engineFor(room).s.SlowMode.Interval.Std()
		if iv <= 0 {
			return plugins.Reply{Text: "slow mode in " + room + " as configured: off"}, nil
		}
		return plugins.Reply{Text: fmt.Sprintf("slow mode in %s as configured: one message per %s", room, shortDur(iv))}, nil
	}
	var d time.Duration
	if arg != "off" {
		cd, err := config.ParseDuration(arg)
		if err != nil || cd.Std() <= 0 {
			return plugins.Reply{}, fmt.Errorf("moderator: %q is not a positive duration, off or default", arg)
		}
		d = cd.Std()
	}
	p.mu.Lock()
	p.slowRoom[room] = d
	p.mu.Unlock()
	p.write(func(tx state.Tx) error { return tx.Put("slow|"+room, []byte(d.String())) })
	if d == 0 {
		return plugins.Reply{Text: "slow mode off in " + room}, nil
	}
	return plugins.Reply{Text: fmt.Sprintf("slow mode on in %s: one message per %s", room, shortDur(d))}, nil
}

func (p *Plugin) runObserve(_ context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	on := call.Bool("on")
	p.mu.Lock()
	p.observing[room] = on
	p.mu.Unlock()
	v := "off"
	if on {
		v = "on"
	}
	p.write(func(tx state.Tx) error { return tx.Put("observe|"+room, []byte(v)) })
	if on {
		return plugins.Reply{Text: "observe mode on in " + room + ": findings are reported, nothing is done"}, nil
	}
	return plugins.Reply{Text: "observe mode off in " + room + ": the moderator acts"}, nil
}

func (p *Plugin) runExplain(_ context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, _ := p.roomOf(call)
	out, err := Explain(p.cfg, room, "", call.Arg("text"))
	if err != nil {
		return plugins.Reply{}, err
	}
	return plugins.Reply{Text: strings.TrimRight(out, "\n")}, nil
}

func (p *Plugin) runPermit(_ context.Context, call *plugins.Call) (plugins.Reply, error) {
	room, err := p.roomOf(call)
	if err != nil {
		return plugins.Reply{}, err
	}
	d := 10 * time.Minute
	if s := call.Arg("duration"); s != "" {
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			return plugins.Reply{}, fmt.Errorf("moderator: %q is not a positive duration", s)
		}
	}
	key, nick, _ := p.target(room, call.Arg("nick"))
	until := p.now().Add(d)
	p.mu.Lock()
	p.permits[room+"|"+key] = until
	p.mu.Unlock()
	p.write(func(tx state.Tx) error { return tx.PutExpiring(permitKey(room+"|"+key), []byte(room+"|"+key), until) })
	return plugins.Reply{Text: fmt.Sprintf("%s may post freely in %s for %s", nick, room, shortDur(d))}, nil
}
