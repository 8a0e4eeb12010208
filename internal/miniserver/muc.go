package miniserver

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

const maxHistory = 20

// room is one multi-user chat room (XEP-0045). Rooms persist while empty,
// until Restart or destruction by an owner.
type room struct {
	local     string
	jid       string // room@service
	name      string
	password  string
	moderated bool
	subject   string
	subjectBy string // nick that set the subject
	occupants map[string]*occupant
	affil     map[string]string // bare JID -> owner, admin, member, outcast
	history   []histEntry
	seq       int
	mod       roomMod // occupant ids, stanza ids, retraction (moderation.go)
}

type occupant struct {
	nick string
	c    *client
	role string // moderator, participant, visitor
	pres *el    // last presence sent to the room
	seq  int
}

type histEntry struct {
	msg *el // from room/nick, no 'to'
	at  time.Time
}

var affRank = map[string]int{"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}

func (r *room) affiliation(bare string) string {
	if a, ok := r.affil[bare]; ok {
		return a
	}
	return "none"
}

func (r *room) occupantOf(c *client) *occupant {
	for _, o := range r.occupants {
		if o.c == c {
			return o
		}
	}
	return nil
}

// sorted returns the occupants in join order.
func (r *room) sorted() []*occupant {
	out := make([]*occupant, 0, len(r.occupants))
	for _, o := range r.occupants {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *occupant) int { return a.seq - b.seq })
	return out
}

func (r *room) defaultRole(aff string) string {
	switch {
	case aff == "owner" || aff == "admin":
		return "moderator"
	case r.moderated && aff == "none":
		return "visitor"
	}
	return "participant"
}

func (r *room) occJID(nick string) string { return r.jid + "/" + nick }

// roomKey resolves "room" or "room@service" to a room localpart.
func (s *Server) roomKey(name string) string {
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		if !strings.EqualFold(name[i+1:], s.mucDomain) {
			return ""
		}
		name = name[:i]
	}
	j, err := jid.New(name, s.mucDomain, "")
	if err != nil {
		return ""
	}
	return j.Localpart()
}

func (s *Server) newRoomLocked(local string) *room {
	r := &room{
		local:     local,
		jid:       local + "@" + s.mucDomain,
		name:      local,
		occupants: make(map[string]*occupant),
		affil:     make(map[string]string),
	}
	s.rooms[local] = r
	return r
}

// occPresence builds the presence of o as seen by rcpt.
func (s *Server) occPresence(r *room, o *occupant, rcpt *client, unavailable bool, statuses []int, item ...string) *el {
	p := elem(nsClient, "presence", "from", r.occJID(o.nick))
	if unavailable {
		p.setAttr("type", "unavailable")
	}
	if o.pres != nil {
		for _, n := range o.pres.Nodes {
			if n.E == nil {
				continue
			}
			switch {
			case n.E.Name.Space == nsMUC, n.E.Name.Space == nsMUCUser, n.E.Name.Space == nsOccID:
			case n.E.Name.Space == nsClient && n.E.Name.Local == "priority":
			default:
				p.add(n.E.clone())
			}
		}
	}
	aff := r.affiliation(o.c.bare)
	role := o.role
	if unavailable {
		role = "none"
	}
	it := elem(nsMUCUser, "item", "affiliation", aff, "role", role)
	if rcpt == o.c || s.isModerator(r, rcpt) {
		it.setAttr("jid", o.c.full.String())
	}
	for i := 0; i+1 < len(item); i += 2 {
		it.setAttr(item[i], item[i+1])
	}
	x := elem(nsMUCUser, "x").add(it)
	if rcpt == o.c && !slices.Contains(statuses, 110) {
		statuses = append([]int{110}, statuses...)
	}
	for _, st := range statuses {
		x.add(elem(nsMUCUser, "status", "code", strconv.Itoa(st)))
	}
	return p.add(x, occupantIDElem(r, o))
}

func (s *Server) isModerator(r *room, c *client) bool {
	o := r.occupantOf(c)
	return o != nil && o.role == "moderator"
}

// broadcastOccLocked sends o's presence to every occupant (o included).
func (s *Server) broadcastOccLocked(r *room, o *occupant, unavailable bool, statuses []int, item ...string) {
	for _, t := range r.sorted() {
		s.deliver(t.c, s.occPresence(r, o, t.c, unavailable, statuses, item...))
	}
}

// mucError answers e with an error from its recipient, carrying the MUC
// <x/> for presence errors.
func (s *Server) mucError(c *client, e *el, typ, cond string) {
	if e.Name.Local == "presence" {
		s.replyError(c, e, typ, cond, elem(nsMUC, "x"))
		return
	}
	s.replyError(c, e, typ, cond)
}

// mucPresenceLocked handles presence to room@service/nick.
func (s *Server) mucPresenceLocked(c *client, e *el, to jid.JID) {
	unavailable := e.attr("type") == "unavailable"
	if to.Localpart() == "" {
		if !unavailable {
			s.mucError(c, e, "modify", "bad-request")
		}
		return
	}
	r := s.rooms[to.Localpart()]
	nick := to.Resourcepart()
	var o *occupant
	if r != nil {
		o = r.occupantOf(c)
	}
	if unavailable {
		if o != nil {
			o.pres = e.clone()
			s.removeOccupantLocked(r, o, nil)
		}
		return
	}
	if nick == "" {
		s.mucError(c, e, "modify", "jid-malformed")
		return
	}
	if o != nil {
		if o.nick == nick {
			o.pres = e.clone()
			s.broadcastOccLocked(r, o, false, nil)
			return
		}
		s.changeNickLocked(c, e, r, o, nick)
		return
	}
	if !s.admitJoinLocked(c, e, to) {
		return // refused, ignored or answered later (limits.go)
	}
	s.joinLocked(c, e, to, r)
}

// joinLocked adds c to a room (creating it on first join).
func (s *Server) joinLocked(c *client, e *el, to jid.JID, r *room) {
	nick := to.Resourcepart()
	x := e.child(nsMUC, "x")
	created := false
	if r == nil {
		r = s.newRoomLocked(to.Localpart())
		r.affil[c.bare] = "owner"
		created = true
	}
	aff := r.affiliation(c.bare)
	switch {
	case aff == "outcast":
		s.mucError(c, e, "auth", "forbidden")
		return
	case r.occupants[nick] != nil:
		s.mucError(c, e, "cancel", "conflict")
		return
	case r.password != "" && (x == nil || x.childText(nsMUC, "password") != r.password):
		s.mucError(c, e, "auth", "not-authorized")
		return
	case r.mod.membersOnly && affRank[aff] < affRank["member"]:
		s.mucError(c, e, "auth", "registration-required")
		return
	}
	r.seq++
	o := &occupant{nick: nick, c: c, role: r.defaultRole(aff), pres: e.clone(), seq: r.seq}
	for _, other := range r.sorted() {
		s.deliver(c, s.occPresence(r, other, c, false, nil))
	}
	r.occupants[nick] = o
	for _, other := range r.sorted() {
		if other != o {
			s.deliver(other.c, s.occPresence(r, o, other.c, false, nil))
		}
	}
	self := []int{110}
	if created {
		self = append(self, 201)
	}
	s.deliver(c, s.occPresence(r, o, c, false, self))
	s.sendHistoryLocked(r, c, x)
	subj := elem(nsClient, "message", "type", "groupchat", "id", s.nextIDLocked(), "from", r.jid)
	if r.subjectBy != "" {
		subj.setAttr("from", r.occJID(r.subjectBy))
	}
	if r.subject != "" {
		subj.add(elem(nsClient, "subject").text(r.subject))
	} else {
		subj.add(elem(nsClient, "subject"))
	}
	s.deliver(c, subj)
}

// sendHistoryLocked sends the room history, honouring <history/> limits.
func (s *Server) sendHistoryLocked(r *room, c *client, x *el) {
	hist := r.history
	maxChars, maxStanzas := -1, -1
	var since time.Time
	if x != nil {
		if h := x.child(nsMUC, "history"); h != nil {
			if v, err := strconv.Atoi(h.attr("maxchars")); err == nil {
				maxChars = v
			}
			if v, err := strconv.Atoi(h.attr("maxstanzas")); err == nil {
				maxStanzas = v
			}
			if v, err := strconv.Atoi(h.attr("seconds")); err == nil {
				since = time.Now().Add(-time.Duration(v) * time.Second)
			}
			if v, err := time.Parse(time.RFC3339, h.attr("since")); err == nil && v.After(since) {
				since = v
			}
		}
	}
	if maxChars == 0 || maxStanzas == 0 {
		return
	}
	var out []*el
	chars := 0
	for i := len(hist) - 1; i >= 0; i-- {
		h := hist[i]
		if !since.IsZero() && h.at.Before(since) {
			break
		}
		if maxStanzas > 0 && len(out) >= maxStanzas {
			break
		}
		m := h.msg.clone()
		m.add(elem(nsDelay, "delay", "from", r.jid, "stamp", h.at.UTC().Format("2006-01-02T15:04:05.000Z")))
		if maxChars > 0 {
			chars += len(m.bytes())
			if chars > maxChars {
				break
			}
		}
		out = append(out, m)
	}
	for i := len(out) - 1; i >= 0; i-- {
		s.deliver(c, out[i])
	}
}

// changeNickLocked renames an occupant (status 303).
func (s *Server) changeNickLocked(c *client, e *el, r *room, o *occupant, nick string) {
	if r.occupants[nick] != nil {
		s.mucError(c, e, "cancel", "conflict")
		return
	}
	s.broadcastOccLocked(r, o, true, []int{303}, "nick", nick)
	delete(r.occupants, o.nick)
	if r.subjectBy == o.nick {
		r.subjectBy = nick
	}
	o.nick = nick
	o.pres = e.clone()
	r.occupants[nick] = o
	s.broadcastOccLocked(r, o, false, nil)
}

// removeOccupantLocked takes o out of r, telling everyone (o included while
// its session lives). extra are status codes such as 307; item overrides
// item attributes (affiliation for bans).
func (s *Server) removeOccupantLocked(r *room, o *occupant, statuses []int, item ...string) {
	for _, t := range r.sorted() {
		if t.c.gone {
			continue
		}
		s.deliver(t.c, s.occPresence(r, o, t.c, true, statuses, item...))
	}
	delete(r.occupants, o.nick)
}

// leaveAllRoomsLocked removes c from every room; e is its unavailable
// presence when it sent one.
func (s *Server) leaveAllRoomsLocked(c *client, e *el) {
	keys := make([]string, 0, len(s.rooms))
	for k := range s.rooms {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r := s.rooms[k]
		if o := r.occupantOf(c); o != nil {
			if e != nil {
				o.pres = e.clone()
			} else {
				o.pres = nil
			}
			s.removeOccupantLocked(r, o, nil)
		}
	}
}

// mucMessageLocked handles messages to the service, a room or an occupant.
func (s *Server) mucMessageLocked(c *client, e *el, to jid.JID, typ string) {
	if typ == "error" {
		return
	}
	if to.Localpart() == "" {
		s.replyError(c, e, "cancel", "service-unavailable")
		return
	}
	r := s.rooms[to.Localpart()]
	if r == nil {
		s.replyError(c, e, "cancel", "item-not-found")
		return
	}
	o := r.occupantOf(c)
	if to.Resourcepart() != "" {
		s.privateMessageLocked(c, e, r, o, to.Resourcepart(), typ)
		return
	}
	if typ != "groupchat" {
		if x := e.child(nsMUCUser, "x"); x != nil && len(x.children(nsMUCUser, "invite")) > 0 {
			s.inviteLocked(c, e, r, x)
			return
		}
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	if o == nil {
		s.replyError(c, e, "cancel", "not-acceptable")
		return
	}
	if o.role == "visitor" {
		s.replyError(c, e, "auth", "forbidden")
		return
	}
	if s.limitMessageLocked(c, e, r, o) {
		return
	}
	out := e.clone()
	out.setAttr("from", r.occJID(o.nick))
	if subj := e.child(nsClient, "subject"); subj != nil && e.child(nsClient, "body") == nil {
		r.subject = subj.innerText()
		r.subjectBy = o.nick
		for _, t := range r.sorted() {
			s.deliver(t.c, out)
		}
		return
	}
	s.stampLocked(r, o, out)
	for _, t := range r.sorted() {
		s.deliver(t.c, out)
	}
	if e.child(nsClient, "body") != nil {
		h := out.clone()
		h.setAttr("to", "")
		r.history = append(r.history, histEntry{msg: h, at: time.Now()})
		if n := len(r.history); n > maxHistory {
			r.history = slices.Clone(r.history[n-maxHistory:])
		}
	}
}

// privateMessageLocked routes a message to room@service/nick.
func (s *Server) privateMessageLocked(c *client, e *el, r *room, o *occupant, nick, typ string) {
	if o == nil {
		s.replyError(c, e, "cancel", "not-acceptable")
		return
	}
	if typ == "groupchat" {
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	t := r.occupants[nick]
	if t == nil {
		s.replyError(c, e, "cancel", "item-not-found")
		return
	}
	out := e.clone()
	out.setAttr("from", r.occJID(o.nick))
	if out.child(nsMUCUser, "x") == nil {
		out.add(elem(nsMUCUser, "x"))
	}
	s.deliver(t.c, out)
}

// inviteLocked relays mediated invitations (XEP-0045 7.8.2).
func (s *Server) inviteLocked(c *client, e *el, r *room, x *el) {
	for _, inv := range x.children(nsMUCUser, "invite") {
		j, err := jid.Parse(inv.attr("to"))
		if err != nil || !s.isAccount(j) {
			s.replyError(c, e, "cancel", "item-not-found")
			return
		}
		nx := elem(nsMUCUser, "x").add(
			elem(nsMUCUser, "invite", "from", c.bare).add(
				elem(nsMUCUser, "reason").text(inv.childText(nsMUCUser, "reason"))))
		if r.password != "" {
			nx.add(elem(nsMUCUser, "password").text(r.password))
		}
		m := elem(nsClient, "message", "from", r.jid, "id", e.attr("id")).add(nx)
		if j.Resourcepart() != "" {
			s.deliver(s.clients[j.String()], m)
			continue
		}
		for _, t := range s.availableOf(j.String()) {
			s.deliver(t, m)
		}
	}
}

// mucIQLocked handles iqs to the service, a room or an occupant.
func (s *Server) mucIQLocked(c *client, e *el, to jid.JID) {
	typ := e.attr("type")
	if to.Localpart() == "" {
		if typ == "result" || typ == "error" {
			return
		}
		q := e.firstChild()
		switch {
		case to.Resourcepart() != "":
			s.replyError(c, e, "cancel", "service-unavailable")
		case q.Name.Space == nsDiscoInfo && q.Name.Local == "query" && typ == "get":
			s.deliver(c, result(e, discoInfo([][3]string{{"conference", "text", "Chatrooms"}},
				nsMUC, nsDiscoInfo, nsDiscoItem, nsPing)))
		case q.Name.Space == nsDiscoItem && q.Name.Local == "query" && typ == "get":
			res := elem(nsDiscoItem, "query")
			keys := make([]string, 0, len(s.rooms))
			for k := range s.rooms {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				res.add(elem(nsDiscoItem, "item", "jid", s.rooms[k].jid, "name", s.rooms[k].name))
			}
			s.deliver(c, result(e, res))
		case q.Name.Space == nsPing && q.Name.Local == "ping" && typ == "get":
			s.deliver(c, result(e, nil))
		default:
			s.replyError(c, e, "cancel", "service-unavailable")
		}
		return
	}
	r := s.rooms[to.Localpart()]
	if to.Resourcepart() != "" {
		s.occupantIQLocked(c, e, r, to.Resourcepart())
		return
	}
	if typ == "result" || typ == "error" {
		return
	}
	if r == nil {
		s.replyError(c, e, "cancel", "item-not-found")
		return
	}
	q := e.firstChild()
	switch {
	case q.Name.Space == nsDiscoInfo && q.Name.Local == "query" && typ == "get":
		s.deliver(c, result(e, s.roomInfo(r)))
	case q.Name.Space == nsDiscoItem && q.Name.Local == "query" && typ == "get":
		s.deliver(c, result(e, elem(nsDiscoItem, "query")))
	case q.Name.Space == nsPing && q.Name.Local == "ping" && typ == "get":
		s.deliver(c, result(e, nil))
	case q.Name.Space == nsMUCAdmin && q.Name.Local == "query":
		s.adminIQLocked(c, e, r, q)
	case q.Name.Space == nsMUCOwner && q.Name.Local == "query":
		s.ownerIQLocked(c, e, r, q)
	case q.Name.Space == nsFasten && q.Name.Local == "apply-to" && typ == "set":
		s.moderateLocked(c, e, r, q)
	default:
		s.replyError(c, e, "cancel", "service-unavailable")
	}
}

func (s *Server) roomInfo(r *room) *el {
	feats := []string{nsMUC, nsDiscoInfo, nsOccID, nsModerate, "muc_persistent", "muc_public", "muc_semianonymous"}
	if r.mod.membersOnly {
		feats = append(feats, "muc_membersonly")
	} else {
		feats = append(feats, "muc_open")
	}
	if r.password != "" {
		feats = append(feats, "muc_passwordprotected")
	} else {
		feats = append(feats, "muc_unsecured")
	}
	if r.moderated {
		feats = append(feats, "muc_moderated")
	} else {
		feats = append(feats, "muc_unmoderated")
	}
	return discoInfo([][3]string{{"conference", "text", r.name}}, feats...)
}

// occupantIQLocked handles iqs to room@service/nick, including XEP-0410
// self-pings.
func (s *Server) occupantIQLocked(c *client, e *el, r *room, nick string) {
	typ := e.attr("type")
	var o *occupant
	if r != nil {
		o = r.occupantOf(c)
	}
	if o == nil {
		s.replyError(c, e, "cancel", "not-acceptable")
		return
	}
	t := r.occupants[nick]
	if typ == "result" || typ == "error" {
		if t != nil {
			out := e.clone()
			out.setAttr("from", r.occJID(o.nick))
			s.deliver(t.c, out)
		}
		return
	}
	if t == nil {
		s.replyError(c, e, "cancel", "item-not-found")
		return
	}
	q := e.firstChild()
	if q.Name.Space == nsPing && q.Name.Local == "ping" && typ == "get" {
		// The service answers pings to occupants itself, which is what
		// XEP-0410 self-pings rely on.
		if t == o {
			s.selfPingLocked()
		}
		s.deliver(c, result(e, nil))
		return
	}
	out := e.clone()
	out.setAttr("from", r.occJID(o.nick))
	s.deliver(t.c, out)
}

// adminIQLocked serves muc#admin: kick, voice, bans and other affiliation
// and role changes, and the lists.
func (s *Server) adminIQLocked(c *client, e *el, r *room, q *el) {
	actor := r.occupantOf(c)
	actorAff := r.affiliation(c.bare)
	items := q.children(nsMUCAdmin, "item")
	if len(items) == 0 {
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	if e.attr("type") == "get" {
		s.adminListLocked(c, e, r, items[0], actor, actorAff)
		return
	}
	// Check every item before applying any.
	type change struct {
		it     *el
		target *occupant
		bare   string
	}
	var changes []change
	for _, it := range items {
		role, aff := it.attr("role"), it.attr("affiliation")
		switch {
		case role != "" && aff == "":
			if actor == nil || actor.role != "moderator" {
				s.replyError(c, e, "auth", "forbidden")
				return
			}
			t := r.occupants[it.attr("nick")]
			if t == nil {
				s.replyError(c, e, "cancel", "item-not-found")
				return
			}
			tAff := r.affiliation(t.c.bare)
			switch role {
			case "none", "visitor":
				if affRank[tAff] >= affRank["admin"] {
					s.replyError(c, e, "cancel", "not-allowed")
					return
				}
			case "participant":
				if t.role == "moderator" && affRank[tAff] >= affRank["admin"] {
					s.replyError(c, e, "cancel", "not-allowed")
					return
				}
			case "moderator":
				if affRank[actorAff] < affRank["admin"] {
					s.replyError(c, e, "auth", "forbidden")
					return
				}
			default:
				s.replyError(c, e, "modify", "bad-request")
				return
			}
			changes = append(changes, change{it: it, target: t})
		case aff != "":
			if _, ok := affRank[aff]; !ok {
				s.replyError(c, e, "modify", "bad-request")
				return
			}
			if affRank[actorAff] < affRank["admin"] {
				s.replyError(c, e, "auth", "forbidden")
				return
			}
			var bare string
			if js := it.attr("jid"); js != "" {
				j, err := jid.Parse(js)
				if err != nil {
					s.replyError(c, e, "modify", "jid-malformed")
					return
				}
				bare = j.Bare().String()
			} else if t := r.occupants[it.attr("nick")]; t != nil {
				bare = t.c.bare
			} else {
				s.replyError(c, e, "cancel", "item-not-found")
				return
			}
			tAff := r.affiliation(bare)
			if actorAff != "owner" && (affRank[tAff] >= affRank["admin"] || affRank[aff] >= affRank["admin"]) {
				s.replyError(c, e, "cancel", "not-allowed")
				return
			}
			if bare == c.bare && actorAff == "owner" && aff != "owner" && s.ownerCount(r) == 1 {
				s.replyError(c, e, "cancel", "conflict")
				return
			}
			changes = append(changes, change{it: it, bare: bare})
		default:
			s.replyError(c, e, "modify", "bad-request")
			return
		}
	}
	s.deliver(c, result(e, nil))
	for _, ch := range changes {
		reason := ch.it.childText(nsMUCAdmin, "reason")
		if ch.target != nil {
			s.setRoleLocked(r, ch.target, ch.it.attr("role"), actor, reason)
		} else {
			s.setAffiliationLocked(r, ch.bare, ch.it.attr("affiliation"), actor, reason)
		}
	}
}

func (s *Server) ownerCount(r *room) int {
	n := 0
	for _, a := range r.affil {
		if a == "owner" {
			n++
		}
	}
	return n
}

// setRoleLocked applies a role change: "none" kicks (307).
func (s *Server) setRoleLocked(r *room, t *occupant, role string, actor *occupant, reason string) {
	if r.occupants[t.nick] != t {
		return
	}
	if role == "none" {
		s.kickLocked(r, t, 307, actor, reason)
		return
	}
	t.role = role
	s.broadcastOccLocked(r, t, false, nil)
}

// kickLocked removes an occupant with a status code (307, 301, 332, 333).
func (s *Server) kickLocked(r *room, t *occupant, status int, actor *occupant, reason string) {
	p := func(rcpt *client) *el {
		pr := s.occPresence(r, t, rcpt, true, []int{status})
		it := pr.child(nsMUCUser, "x").child(nsMUCUser, "item")
		if actor != nil {
			it.add(elem(nsMUCUser, "actor", "nick", actor.nick))
		}
		if reason != "" {
			it.add(elem(nsMUCUser, "reason").text(reason))
		}
		return pr
	}
	t.pres = nil
	for _, o := range r.sorted() {
		s.deliver(o.c, p(o.c))
	}
	delete(r.occupants, t.nick)
}

// setAffiliationLocked applies an affiliation change; "outcast" bans (301).
func (s *Server) setAffiliationLocked(r *room, bare, aff string, actor *occupant, reason string) {
	if aff == "none" {
		delete(r.affil, bare)
	} else {
		r.affil[bare] = aff
	}
	for _, o := range r.sorted() {
		if o.c.bare != bare {
			continue
		}
		if aff == "outcast" {
			s.kickLocked(r, o, 301, actor, reason)
			continue
		}
		if nr := r.defaultRole(aff); nr == "moderator" || o.role == "moderator" {
			o.role = nr
		}
		s.broadcastOccLocked(r, o, false, nil)
	}
}

// adminListLocked answers a muc#admin get for a role or affiliation list.
func (s *Server) adminListLocked(c *client, e *el, r *room, it *el, actor *occupant, actorAff string) {
	res := elem(nsMUCAdmin, "query")
	switch role, aff := it.attr("role"), it.attr("affiliation"); {
	case role != "":
		if actor == nil || actor.role != "moderator" {
			s.replyError(c, e, "auth", "forbidden")
			return
		}
		for _, o := range r.sorted() {
			if o.role == role {
				res.add(elem(nsMUCAdmin, "item", "nick", o.nick, "role", o.role,
					"affiliation", r.affiliation(o.c.bare), "jid", o.c.full.String()))
			}
		}
	case aff != "":
		if affRank[actorAff] < affRank["admin"] {
			s.replyError(c, e, "auth", "forbidden")
			return
		}
		keys := make([]string, 0, len(r.affil))
		for k, a := range r.affil {
			if a == aff {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			res.add(elem(nsMUCAdmin, "item", "jid", k, "affiliation", aff))
		}
	default:
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	s.deliver(c, result(e, res))
}

// ownerIQLocked serves muc#owner: the configuration form and destruction.
func (s *Server) ownerIQLocked(c *client, e *el, r *room, q *el) {
	if r.affiliation(c.bare) != "owner" {
		s.replyError(c, e, "auth", "forbidden")
		return
	}
	if e.attr("type") == "get" {
		form := elem(nsXData, "x", "type", "form").add(
			elem(nsXData, "field", "var", "FORM_TYPE", "type", "hidden").add(
				elem(nsXData, "value").text("http://jabber.org/protocol/muc#roomconfig")),
			field("muc#roomconfig_roomname", "text-single", r.name),
			field("muc#roomconfig_roomsecret", "text-private", r.password),
			field("muc#roomconfig_passwordprotectedroom", "boolean", boolStr(r.password != "")),
			field("muc#roomconfig_moderatedroom", "boolean", boolStr(r.moderated)),
			field("muc#roomconfig_membersonly", "boolean", boolStr(r.mod.membersOnly)),
			field("muc#roomconfig_persistentroom", "boolean", "1"),
		)
		s.deliver(c, result(e, elem(nsMUCOwner, "query").add(form)))
		return
	}
	if d := q.child(nsMUCOwner, "destroy"); d != nil {
		s.deliver(c, result(e, nil))
		for _, o := range r.sorted() {
			pr := s.occPresence(r, o, o.c, true, nil)
			x := pr.child(nsMUCUser, "x")
			de := elem(nsMUCUser, "destroy", "jid", d.attr("jid"))
			if reason := d.childText(nsMUCOwner, "reason"); reason != "" {
				de.add(elem(nsMUCUser, "reason").text(reason))
			}
			x.add(de)
			s.deliver(o.c, pr)
		}
		delete(s.rooms, r.local)
		return
	}
	x := q.child(nsXData, "x")
	if x == nil {
		s.replyError(c, e, "modify", "bad-request")
		return
	}
	if x.attr("type") == "submit" {
		protected := r.password != ""
		secret := r.password
		for _, f := range x.children(nsXData, "field") {
			v := f.childText(nsXData, "value")
			switch f.attr("var") {
			case "muc#roomconfig_roomname":
				r.name = v
			case "muc#roomconfig_roomsecret":
				secret = v
			case "muc#roomconfig_passwordprotectedroom":
				protected = v == "1" || v == "true"
			case "muc#roomconfig_moderatedroom":
				r.moderated = v == "1" || v == "true"
			case "muc#roomconfig_membersonly":
				r.mod.membersOnly = v == "1" || v == "true"
			}
		}
		if protected {
			r.password = secret
		} else {
			r.password = ""
		}
	}
	s.deliver(c, result(e, nil))
}

func field(v, typ, value string) *el {
	f := elem(nsXData, "field", "var", v, "type", typ)
	return f.add(elem(nsXData, "value").text(value))
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Kick removes an occupant from a room with a status code: 307 (kick), 301
// (ban: the bare JID also becomes an outcast), 332 (service shutdown) or 333
// (technical reasons).
func (s *Server) Kick(roomName, nick string, status int) error {
	switch status {
	case 307, 301, 332, 333:
	default:
		return ErrBadStatus
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[s.roomKey(roomName)]
	if r == nil {
		return ErrNoRoom
	}
	o := r.occupants[nick]
	if o == nil {
		return ErrNoOccupant
	}
	if status == 301 {
		r.affil[o.c.bare] = "outcast"
	}
	s.kickLocked(r, o, status, nil, "")
	return nil
}

// Occupants returns the nicks currently in a room ("room" or
// "room@service"), in join order.
func (s *Server) Occupants(roomName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[s.roomKey(roomName)]
	if r == nil {
		return nil
	}
	var out []string
	for _, o := range r.sorted() {
		out = append(out, o.nick)
	}
	return out
}

// SetRoomPassword creates the room if needed and sets (or, when empty,
// clears) its password.
func (s *Server) SetRoomPassword(roomName, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.roomKey(roomName)
	if k == "" {
		return ErrNoRoom
	}
	r := s.rooms[k]
	if r == nil {
		r = s.newRoomLocked(k)
	}
	r.password = password
	return nil
}
