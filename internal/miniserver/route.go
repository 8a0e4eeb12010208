package miniserver

import (
	"slices"
	"strconv"

	"mellium.im/xmpp/jid"
)

// process handles one stanza from c; it reports false when the stream must
// stop being read.
func (s *Server) process(c *client, e *el) (ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
			s.log.Error("stanza handler panicked", "err", r, "jid", c.full.String())
			c.closeStream("internal-server-error")
			ok = false
		}
	}()
	if s.deaf {
		s.stats.drops.Add(1)
		return true
	}
	if c.gone {
		return false
	}
	if c.comp != nil {
		// A component's stanza (component.go), sent as one of its
		// addresses.
		if c = s.componentSenderLocked(c, e); c == nil {
			return false
		}
	}
	if e.Name.Space != nsClient {
		c.closeStream("unsupported-stanza-type")
		return false
	}
	switch e.Name.Local {
	case "message", "presence", "iq":
	default:
		c.closeStream("unsupported-stanza-type")
		return false
	}
	e.setAttr("from", c.full.String())
	var to jid.JID
	if ts := e.attr("to"); ts != "" {
		j, err := jid.Parse(ts)
		if err != nil {
			s.replyError(c, e, "modify", "jid-malformed")
			c.smHandledLocked() // stream management (sm.go)
			return true
		}
		to = j
		e.setAttr("to", to.String())
		if s.routeComponentLocked(c, e, to) { // component.go
			c.smHandledLocked()
			return true
		}
	}
	switch e.Name.Local {
	case "iq":
		s.iqLocked(c, e, to)
	case "message":
		s.messageLocked(c, e, to)
	case "presence":
		s.presenceLocked(c, e, to)
	}
	c.smHandledLocked() // stream management (sm.go): counted once routed
	return true
}

// deliver writes e to one client with its 'to' set to the client's JID.
func (s *Server) deliver(c *client, e *el) {
	if c == nil || c.gone {
		return
	}
	e.setAttr("to", c.full.String())
	b := e.bytes()
	c.smSentLocked(b) // stream management (sm.go)
	c.send(b)
}

// nextIDLocked returns a fresh stanza id for server-originated stanzas.
func (s *Server) nextIDLocked() string {
	s.nextID++
	return "ms" + strconv.FormatInt(s.nextID, 36)
}

// stanzaError builds an <error/> element.
func stanzaError(typ, cond string) *el {
	return elem(nsClient, "error", "type", typ).add(elem(nsStanzas, cond))
}

// errorReply builds the error answer to e (from its recipient back to its
// sender). extra children are added before the <error/>.
func errorReply(e *el, typ, cond string, extra ...*el) *el {
	r := elem(nsClient, e.Name.Local, "id", e.attr("id"), "from", e.attr("to"), "to", e.attr("from"), "type", "error")
	r.add(extra...)
	return r.add(stanzaError(typ, cond))
}

// replyError answers e with a stanza error, unless e is an error itself.
func (s *Server) replyError(c *client, e *el, typ, cond string, extra ...*el) {
	if e.attr("type") == "error" {
		return
	}
	s.stats.rejected.Add(1)
	s.deliver(c, errorReply(e, typ, cond, extra...))
}

// result builds an iq result to e; payload is optional.
func result(e *el, payload *el) *el {
	return elem(nsClient, "iq", "id", e.attr("id"), "from", e.attr("to"), "type", "result").add(payload)
}

// sessionsOf returns the bound sessions of a bare JID, sorted by resource.
func (s *Server) sessionsOf(bare string) []*client {
	var out []*client
	for _, c := range s.clients {
		if c.bare == bare && !c.gone {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *client) int {
		switch {
		case a.full.String() < b.full.String():
			return -1
		case a.full.String() > b.full.String():
			return 1
		}
		return 0
	})
	return out
}

// availableOf returns the available sessions of a bare JID.
func (s *Server) availableOf(bare string) []*client {
	var out []*client
	for _, c := range s.sessionsOf(bare) {
		if c.available {
			out = append(out, c)
		}
	}
	return out
}

// isAccount reports whether bare is a local account.
func (s *Server) isAccount(to jid.JID) bool {
	if to.Domainpart() != s.domain || to.Localpart() == "" {
		return false
	}
	_, ok := s.accounts[to.Localpart()]
	return ok
}

// iqLocked routes an iq.
func (s *Server) iqLocked(c *client, e *el, to jid.JID) {
	typ := e.attr("type")
	switch typ {
	case "get", "set":
		n := 0
		for _, nd := range e.Nodes {
			if nd.E != nil {
				n++
			}
		}
		if e.attr("id") == "" || n != 1 {
			s.replyError(c, e, "modify", "bad-request")
			return
		}
	case "result", "error":
		if e.attr("id") == "" {
			return
		}
	default:
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	dom := to.Domainpart()
	switch {
	case to.String() == "":
		s.serverIQLocked(c, e, true)
	case dom == s.domain && to.Localpart() == "" && to.Resourcepart() == "":
		s.serverIQLocked(c, e, false)
	case dom == s.domain && to.Localpart() == "":
		s.replyError(c, e, "cancel", "service-unavailable")
	case dom == s.domain:
		s.userIQLocked(c, e, to)
	case dom == s.mucDomain:
		s.mucIQLocked(c, e, to)
	default:
		s.replyError(c, e, "cancel", "remote-server-not-found")
	}
}

// serverIQLocked answers an iq addressed to the server (or, with self set,
// to no one: the sender's own account).
func (s *Server) serverIQLocked(c *client, e *el, self bool) {
	typ := e.attr("type")
	if typ == "result" || typ == "error" {
		return
	}
	q := e.firstChild()
	switch {
	case q.Name.Space == nsPing && q.Name.Local == "ping" && typ == "get":
		s.deliver(c, result(e, nil))
	case q.Name.Space == nsDiscoInfo && q.Name.Local == "query" && typ == "get":
		if q.attr("node") != "" {
			s.replyError(c, e, "cancel", "item-not-found")
			return
		}
		if self {
			s.deliver(c, result(e, accountInfo()))
			return
		}
		s.deliver(c, result(e, discoInfo([][3]string{{"server", "im", "crier mini server"}},
			nsDiscoInfo, nsDiscoItem, nsPing, nsRoster, nsVersion, "urn:xmpp:delay", "msgoffline")))
	case q.Name.Space == nsDiscoItem && q.Name.Local == "query" && typ == "get":
		if self || q.attr("node") != "" {
			s.deliver(c, result(e, elem(nsDiscoItem, "query")))
			return
		}
		s.deliver(c, result(e, elem(nsDiscoItem, "query").add(
			elem(nsDiscoItem, "item", "jid", s.mucDomain, "name", "Chatrooms"))))
	case q.Name.Space == nsRoster && q.Name.Local == "query" && self:
		s.rosterIQLocked(c, e, q)
	case q.Name.Space == nsSession && q.Name.Local == "session" && typ == "set":
		s.deliver(c, result(e, nil))
	case q.Name.Space == nsVersion && q.Name.Local == "query" && typ == "get" && !self:
		s.deliver(c, result(e, elem(nsVersion, "query").add(
			elem(nsVersion, "name").text("crier mini server"),
			elem(nsVersion, "version").text("1"))))
	default:
		s.replyError(c, e, "cancel", "service-unavailable")
	}
}

// accountInfo is the disco#info of an account.
func accountInfo() *el {
	return discoInfo([][3]string{{"account", "registered", ""}}, nsDiscoInfo)
}

// discoInfo builds a disco#info query with identities (category, type,
// name) and features.
func discoInfo(ids [][3]string, features ...string) *el {
	q := elem(nsDiscoInfo, "query")
	for _, id := range ids {
		q.add(elem(nsDiscoInfo, "identity", "category", id[0], "type", id[1], "name", id[2]))
	}
	for _, f := range features {
		q.add(elem(nsDiscoInfo, "feature", "var", f))
	}
	return q
}

// userIQLocked routes an iq to a local user.
func (s *Server) userIQLocked(c *client, e *el, to jid.JID) {
	typ := e.attr("type")
	if to.Resourcepart() != "" {
		if t := s.clients[to.String()]; t != nil {
			s.deliver(t, e)
			return
		}
		s.replyError(c, e, "cancel", "service-unavailable")
		return
	}
	// A bare JID: the server answers on the account's behalf.
	if typ == "result" || typ == "error" {
		return
	}
	if to.String() == c.bare {
		s.serverIQLocked(c, e, true)
		return
	}
	q := e.firstChild()
	switch {
	case !s.isAccount(to):
		s.replyError(c, e, "cancel", "service-unavailable")
	case q.Name.Space == nsDiscoInfo && q.Name.Local == "query" && typ == "get" && q.attr("node") == "":
		s.deliver(c, result(e, accountInfo()))
	case q.Name.Space == nsPing && q.Name.Local == "ping" && typ == "get":
		s.deliver(c, result(e, nil))
	default:
		s.replyError(c, e, "cancel", "service-unavailable")
	}
}

// messageLocked routes a message.
func (s *Server) messageLocked(c *client, e *el, to jid.JID) {
	typ := e.attr("type")
	switch typ {
	case "", "normal", "chat", "groupchat", "headline", "error":
	default:
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	if typ == "" {
		typ = "normal"
	}
	if to.String() == "" {
		to = c.full.Bare()
		e.setAttr("to", to.String())
	}
	switch dom := to.Domainpart(); {
	case dom == s.mucDomain:
		s.mucMessageLocked(c, e, to, typ)
	case dom != s.domain:
		s.replyError(c, e, "cancel", "remote-server-not-found")
	case to.Localpart() == "":
		if typ != "headline" {
			s.replyError(c, e, "cancel", "service-unavailable")
		}
	default:
		s.userMessageLocked(c, e, to, typ)
	}
}

// userMessageLocked delivers a message to a local account per RFC 6121 8.5.
func (s *Server) userMessageLocked(c *client, e *el, to jid.JID, typ string) {
	if !s.isAccount(to) {
		s.replyError(c, e, "cancel", "service-unavailable")
		return
	}
	if to.Resourcepart() != "" {
		if t := s.clients[to.String()]; t != nil {
			s.deliver(t, e)
			return
		}
	}
	bare := to.Bare().String()
	var targets []*client
	best := -129
	for _, t := range s.availableOf(bare) {
		if t.prio < 0 {
			continue
		}
		targets = append(targets, t)
		best = max(best, t.prio)
	}
	switch typ {
	case "error":
		return
	case "groupchat":
		s.replyError(c, e, "cancel", "service-unavailable")
		return
	case "chat":
		var top []*client
		for _, t := range targets {
			if t.prio == best {
				top = append(top, t)
			}
		}
		targets = top
	}
	for _, t := range targets {
		s.deliver(t, e)
	}
	if len(targets) == 0 && (typ == "chat" || typ == "normal") {
		if !s.storeOfflineLocked(bare, e) {
			// A full store says so, as a real server does, instead of
			// dropping the message unseen.
			s.replyError(c, e, "wait", "resource-constraint")
		}
	}
}

// maxOffline is how many messages the server keeps for one offline account
// (ejabberd's default is 5,000).
const maxOffline = 10000

// storeOfflineLocked keeps a message for the account's next login; it
// reports false when the account's store is full.
func (s *Server) storeOfflineLocked(bare string, e *el) bool {
	if len(s.offline[bare]) >= maxOffline {
		return false
	}
	m := e.clone()
	m.removeChildren(nsDelay, "delay")
	m.add(elem(nsDelay, "delay", "from", s.domain, "stamp", nowStamp()))
	s.offline[bare] = append(s.offline[bare], m)
	return true
}
