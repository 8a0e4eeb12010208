package miniserver

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"
)

// XEP-0421 occupant ids, XEP-0359 stanza ids on room messages, XEP-0425
// moderated retraction (the fastening form Prosody's mod_muc_moderation
// and ejabberd answer) and members-only rooms.
const (
	nsOccID    = "urn:xmpp:occupant-id:0"
	nsSID      = "urn:xmpp:sid:0"
	nsFasten   = "urn:xmpp:fasten:0"
	nsModerate = "urn:xmpp:message-moderate:0"
	nsRetract  = "urn:xmpp:message-retract:0"
)

// maxModerated is how many recent messages of a room can be retracted.
const maxModerated = 200

// roomMod is what a room keeps for these extensions.
type roomMod struct {
	membersOnly bool
	// sent are the room's recent messages by stanza-id, oldest first.
	sent []sentMsg
	seq  int
}

type sentMsg struct {
	id   string
	nick string
}

// occupantID is the room's stable, opaque id for a real bare JID: the
// same across joins and nick changes, different in each room.
func occupantID(r *room, bare string) string {
	h := sha256.Sum256([]byte(r.jid + "\x00" + bare))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// occupantIDElem is the <occupant-id/> of o in r.
func occupantIDElem(r *room, o *occupant) *el {
	return elem(nsOccID, "occupant-id", "id", occupantID(r, o.c.bare))
}

// stampLocked puts the room's occupant-id and stanza-id on a message it
// broadcasts, after removing any the sender put there (XEP-0421 §4: a
// room must not pass on an occupant-id it did not set), and remembers
// the message for retraction.
func (s *Server) stampLocked(r *room, o *occupant, out *el) {
	out.removeChildren(nsOccID, "occupant-id")
	out.Nodes = slices.DeleteFunc(out.Nodes, func(n node) bool {
		return n.E != nil && n.E.Name.Space == nsSID && n.E.Name.Local == "stanza-id" && n.E.attr("by") == r.jid
	})
	r.mod.seq++
	id := r.local + "-" + strconv.Itoa(r.mod.seq)
	out.add(occupantIDElem(r, o), elem(nsSID, "stanza-id", "id", id, "by", r.jid))
	r.mod.sent = append(r.mod.sent, sentMsg{id: id, nick: o.nick})
	if n := len(r.mod.sent); n > maxModerated {
		r.mod.sent = slices.Clone(r.mod.sent[n-maxModerated:])
	}
}

// moderateLocked serves a moderator's retraction: <apply-to id=…><moderate>
// <retract/>. The message leaves the history and every occupant is told.
func (s *Server) moderateLocked(c *client, e *el, r *room, q *el) {
	m := q.child(nsModerate, "moderate")
	if m == nil || m.child(nsRetract, "retract") == nil {
		s.replyError(c, e, "cancel", "feature-not-implemented")
		return
	}
	actor := r.occupantOf(c)
	if actor == nil || actor.role != "moderator" {
		s.replyError(c, e, "auth", "forbidden")
		return
	}
	id := q.attr("id")
	i := slices.IndexFunc(r.mod.sent, func(m sentMsg) bool { return m.id == id })
	if i < 0 {
		s.replyError(c, e, "cancel", "item-not-found")
		return
	}
	r.mod.sent = slices.Delete(r.mod.sent, i, i+1)
	r.history = slices.DeleteFunc(r.history, func(h histEntry) bool {
		sid := h.msg.child(nsSID, "stanza-id")
		return sid != nil && sid.attr("id") == id
	})
	s.deliver(c, result(e, nil))
	moderated := elem(nsModerate, "moderated", "by", r.occJID(actor.nick)).add(elem(nsRetract, "retract"))
	if reason := m.childText(nsModerate, "reason"); reason != "" {
		moderated.add(elem(nsModerate, "reason").text(reason))
	}
	note := elem(nsClient, "message", "type", "groupchat", "from", r.jid, "id", s.nextIDLocked()).add(
		elem(nsFasten, "apply-to", "id", id).add(moderated))
	for _, t := range r.sorted() {
		s.deliver(t.c, note)
	}
}

// Retractable lists the stanza-ids of a room's messages that a moderator
// can still retract, oldest first (tests).
func (s *Server) Retractable(roomName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[s.roomKey(roomName)]
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(r.mod.sent))
	for _, m := range r.mod.sent {
		out = append(out, m.id)
	}
	return out
}

// MembersOnly reports whether a room is members-only (tests).
func (s *Server) MembersOnly(roomName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[s.roomKey(roomName)]
	return r != nil && r.mod.membersOnly
}
