package miniserver

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// rosterItem is one contact in an account's roster.
type rosterItem struct {
	jid    string
	name   string
	groups []string
	sub    string // none, to, from, both
	ask    bool   // subscription request pending (ask='subscribe')
}

func (it *rosterItem) hasTo() bool   { return it.sub == "to" || it.sub == "both" }
func (it *rosterItem) hasFrom() bool { return it.sub == "from" || it.sub == "both" }

func (it *rosterItem) setTo(on bool)   { it.sub = subOf(on, it.hasFrom()) }
func (it *rosterItem) setFrom(on bool) { it.sub = subOf(it.hasTo(), on) }

func subOf(to, from bool) string {
	switch {
	case to && from:
		return "both"
	case to:
		return "to"
	case from:
		return "from"
	}
	return "none"
}

func (it *rosterItem) elem() *el {
	ask := ""
	if it.ask {
		ask = "subscribe"
	}
	e := elem(nsRoster, "item", "jid", it.jid, "name", it.name, "subscription", it.sub, "ask", ask)
	for _, g := range it.groups {
		e.add(elem(nsRoster, "group").text(g))
	}
	return e
}

func nowStamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// item returns the roster item of owner for contact, creating it if asked.
func (s *Server) item(owner, contact string, create bool) *rosterItem {
	r := s.rosters[owner]
	if r == nil {
		if !create {
			return nil
		}
		r = make(map[string]*rosterItem)
		s.rosters[owner] = r
	}
	it := r[contact]
	if it == nil && create {
		it = &rosterItem{jid: contact, sub: "none"}
		r[contact] = it
	}
	return it
}

// pushLocked sends a roster push for item (or its removal) to every session
// of owner.
func (s *Server) pushLocked(owner string, item *el) {
	for _, c := range s.sessionsOf(owner) {
		iq := elem(nsClient, "iq", "type", "set", "id", s.nextIDLocked()).add(
			elem(nsRoster, "query").add(item.clone()))
		s.deliver(c, iq)
	}
}

// rosterIQLocked serves roster get and set (RFC 6121 section 2).
func (s *Server) rosterIQLocked(c *client, e, q *el) {
	if e.attr("type") == "get" {
		res := elem(nsRoster, "query")
		r := s.rosters[c.bare]
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			res.add(r[k].elem())
		}
		s.deliver(c, result(e, res))
		return
	}
	items := q.children(nsRoster, "item")
	if len(items) != 1 {
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	it := items[0]
	j, err := jid.Parse(it.attr("jid"))
	if err != nil || j.Resourcepart() != "" {
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	contact := j.String()
	if it.attr("subscription") == "remove" {
		old := s.item(c.bare, contact, false)
		if old == nil {
			s.replyError(c, e, "cancel", "item-not-found")
			return
		}
		if old.hasTo() || old.ask {
			s.unsubscribeLocked(c.bare, j)
		}
		if old.hasFrom() {
			s.unsubscribedLocked(c.bare, j)
		}
		delete(s.rosters[c.bare], contact)
		s.deliver(c, result(e, nil))
		s.pushLocked(c.bare, elem(nsRoster, "item", "jid", contact, "subscription", "remove"))
		return
	}
	ri := s.item(c.bare, contact, true)
	ri.name = it.attr("name")
	ri.groups = ri.groups[:0]
	for _, g := range it.children(nsRoster, "group") {
		if t := g.innerText(); t != "" && !slices.Contains(ri.groups, t) {
			ri.groups = append(ri.groups, t)
		}
	}
	s.deliver(c, result(e, nil))
	s.pushLocked(c.bare, ri.elem())
}

// presenceLocked routes a presence stanza.
func (s *Server) presenceLocked(c *client, e *el, to jid.JID) {
	typ := e.attr("type")
	switch typ {
	case "", "unavailable":
		switch {
		case to.String() == "":
			s.broadcastPresenceLocked(c, e, typ == "")
		case to.Domainpart() == s.mucDomain:
			s.mucPresenceLocked(c, e, to)
		case s.isAccount(to):
			s.directedPresenceLocked(e, to)
		case to.Domainpart() != s.domain && typ == "":
			// Not ours: probably a room on a service that does not exist.
			s.mucError(c, e, "cancel", "remote-server-not-found")
		}
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		if !s.isAccount(to) || to.Bare().String() == c.bare {
			return
		}
		to = to.Bare()
		switch typ {
		case "subscribe":
			s.subscribeLocked(c.bare, to)
		case "subscribed":
			s.subscribedLocked(c.bare, to)
		case "unsubscribe":
			s.unsubscribeLocked(c.bare, to)
		case "unsubscribed":
			s.unsubscribedLocked(c.bare, to)
		}
	case "probe":
		if !s.isAccount(to) {
			return
		}
		if it := s.item(to.Bare().String(), c.bare, false); it != nil && it.hasFrom() {
			s.sendPresenceOfLocked(to.Bare().String(), []*client{c})
		}
	case "error":
		switch {
		case to.Domainpart() == s.mucDomain:
			// An occupant bouncing room traffic; ignored.
		case s.isAccount(to):
			s.directedPresenceLocked(e, to)
		}
	default:
		s.replyError(c, e, "modify", "bad-request")
	}
}

// directedPresenceLocked delivers presence sent to a local user.
func (s *Server) directedPresenceLocked(e *el, to jid.JID) {
	if to.Resourcepart() != "" {
		s.deliver(s.clients[to.String()], e)
		return
	}
	for _, t := range s.availableOf(to.String()) {
		s.deliver(t, e)
	}
}

// broadcastPresenceLocked handles presence without 'to': it goes to the
// subscribers and to the account's own available sessions.
func (s *Server) broadcastPresenceLocked(c *client, e *el, available bool) {
	initial := available && !c.available
	if available {
		p, _ := strconv.Atoi(strings.TrimSpace(e.childText(nsClient, "priority")))
		c.prio = min(max(p, -128), 127)
		c.available = true
		c.pres = e.clone()
	} else {
		if !c.available {
			// Still leave rooms: the client says it is going away.
			s.leaveAllRoomsLocked(c, e)
			return
		}
		c.available = false
		c.pres = nil
	}
	out := e.clone()
	out.setAttr("to", "")
	for _, t := range s.subscribersLocked(c.bare) {
		s.deliver(t, out)
	}
	for _, t := range s.availableOf(c.bare) {
		s.deliver(t, out)
	}
	if !available {
		s.deliver(c, out) // the sender is no longer in availableOf
		s.leaveAllRoomsLocked(c, e)
		return
	}
	if !initial {
		return
	}
	// Initial presence: current presence of the contacts, pending
	// subscription requests, then offline messages.
	for contact, it := range s.rosters[c.bare] {
		if it.hasTo() {
			s.sendPresenceOfLocked(contact, []*client{c})
		}
	}
	for from := range s.pendingIn[c.bare] {
		s.deliver(c, elem(nsClient, "presence", "from", from, "type", "subscribe"))
	}
	if c.prio >= 0 {
		for _, m := range s.offline[c.bare] {
			s.deliver(c, m)
		}
		delete(s.offline, c.bare)
	}
}

// subscribersLocked returns the available sessions of every contact that
// has a subscription to bare's presence.
func (s *Server) subscribersLocked(bare string) []*client {
	var out []*client
	for contact, it := range s.rosters[bare] {
		if it.hasFrom() {
			out = append(out, s.availableOf(contact)...)
		}
	}
	return out
}

// sendPresenceOfLocked sends the current presence of every available
// session of owner to each target (unavailable from the bare JID when none).
func (s *Server) sendPresenceOfLocked(owner string, targets []*client) {
	avail := s.availableOf(owner)
	for _, t := range targets {
		if len(avail) == 0 {
			s.deliver(t, elem(nsClient, "presence", "from", owner, "type", "unavailable"))
			continue
		}
		for _, a := range avail {
			p := a.pres.clone()
			p.setAttr("from", a.full.String())
			s.deliver(t, p)
		}
	}
}

// sendUnavailableOfLocked tells each target that owner's sessions are gone.
func (s *Server) sendUnavailableOfLocked(owner string, targets []*client) {
	for _, a := range s.availableOf(owner) {
		for _, t := range targets {
			s.deliver(t, elem(nsClient, "presence", "from", a.full.String(), "type", "unavailable"))
		}
	}
}

func subPresence(from, typ string) *el {
	return elem(nsClient, "presence", "from", from, "type", typ)
}

// subscribeLocked: user asks contact for a subscription to its presence.
func (s *Server) subscribeLocked(user string, contact jid.JID) {
	cb := contact.String()
	if ci := s.item(cb, user, false); ci != nil && ci.hasFrom() {
		// Already approved: answer on the contact's behalf.
		ui := s.item(user, cb, true)
		if !ui.hasTo() || ui.ask {
			ui.setTo(true)
			ui.ask = false
			s.pushLocked(user, ui.elem())
		}
		for _, t := range s.sessionsOf(user) {
			s.deliver(t, subPresence(cb, "subscribed"))
		}
		s.sendPresenceOfLocked(cb, s.availableOf(user))
		return
	}
	ui := s.item(user, cb, true)
	if !ui.ask {
		ui.ask = true
		s.pushLocked(user, ui.elem())
	}
	if s.pendingIn[cb] == nil {
		s.pendingIn[cb] = make(map[string]bool)
	}
	s.pendingIn[cb][user] = true
	for _, t := range s.availableOf(cb) {
		s.deliver(t, subPresence(user, "subscribe"))
	}
}

// subscribedLocked: user approves contact's request to see user's presence.
func (s *Server) subscribedLocked(user string, contact jid.JID) {
	cb := contact.String()
	ci := s.item(cb, user, false)
	if !s.pendingIn[user][cb] && (ci == nil || !ci.ask) {
		return
	}
	delete(s.pendingIn[user], cb)
	ui := s.item(user, cb, true)
	if !ui.hasFrom() {
		ui.setFrom(true)
		s.pushLocked(user, ui.elem())
	}
	ci = s.item(cb, user, true)
	ci.setTo(true)
	ci.ask = false
	s.pushLocked(cb, ci.elem())
	for _, t := range s.sessionsOf(cb) {
		s.deliver(t, subPresence(user, "subscribed"))
	}
	s.sendPresenceOfLocked(user, s.availableOf(cb))
}

// unsubscribeLocked: user no longer wants contact's presence.
func (s *Server) unsubscribeLocked(user string, contact jid.JID) {
	cb := contact.String()
	if ui := s.item(user, cb, false); ui != nil && (ui.hasTo() || ui.ask) {
		ui.setTo(false)
		ui.ask = false
		s.pushLocked(user, ui.elem())
	}
	delete(s.pendingIn[cb], user)
	if ci := s.item(cb, user, false); ci != nil && ci.hasFrom() {
		ci.setFrom(false)
		s.pushLocked(cb, ci.elem())
	}
	for _, t := range s.sessionsOf(cb) {
		s.deliver(t, subPresence(user, "unsubscribe"))
	}
	s.sendUnavailableOfLocked(cb, s.availableOf(user))
}

// unsubscribedLocked: user refuses or cancels contact's subscription.
func (s *Server) unsubscribedLocked(user string, contact jid.JID) {
	cb := contact.String()
	delete(s.pendingIn[user], cb)
	if ui := s.item(user, cb, false); ui != nil && ui.hasFrom() {
		ui.setFrom(false)
		s.pushLocked(user, ui.elem())
	}
	if ci := s.item(cb, user, false); ci != nil && (ci.hasTo() || ci.ask) {
		ci.setTo(false)
		ci.ask = false
		s.pushLocked(cb, ci.elem())
	}
	for _, t := range s.sessionsOf(cb) {
		s.deliver(t, subPresence(user, "unsubscribed"))
	}
	s.sendUnavailableOfLocked(user, s.availableOf(cb))
}

// detachLocked removes a session from every structure: it is called when a
// stream ends and when a session is replaced or dropped. It is idempotent.
func (s *Server) detachLocked(c *client) {
	if c.gone {
		return
	}
	s.leaveAllRoomsLocked(c, nil)
	if c.available {
		out := elem(nsClient, "presence", "from", c.full.String(), "type", "unavailable")
		c.available = false
		c.pres = nil
		for _, t := range s.subscribersLocked(c.bare) {
			s.deliver(t, out)
		}
		for _, t := range s.availableOf(c.bare) {
			if t != c {
				s.deliver(t, out)
			}
		}
	}
	c.gone = true
	if s.clients[c.full.String()] == c {
		delete(s.clients, c.full.String())
	}
}
