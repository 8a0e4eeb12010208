package rules

import "strings"

// EventKind is what a Message is: a message, or an occupant or subject
// event in a room.
type EventKind string

// Event kinds of Message.Kind.
const (
	KindMessage EventKind = "message"
	KindJoin    EventKind = "join"
	KindLeave   EventKind = "leave"
	KindSubject EventKind = "subject"
	// KindNick is an occupant's nick change; no rule triggers on it, the
	// chain's links see it.
	KindNick EventKind = "nick"
)

// ActionKind is what an Action does.
type ActionKind string

// Message types of Message.Type and Action.Type.
const (
	TypeGroupchat = "groupchat"
	TypeChat      = "chat"
	TypeHeadline  = "headline"
	TypeNormal    = "normal"
)

// Action kinds of Action.Kind.
const (
	ActReply    ActionKind = "reply"
	ActSend     ActionKind = "send"
	ActHeadline ActionKind = "headline"
	ActSubject  ActionKind = "subject"
	ActKick     ActionKind = "kick"
	ActBan      ActionKind = "ban"
	ActVoice    ActionKind = "voice"
	ActDevoice  ActionKind = "devoice"
	ActInvite   ActionKind = "invite"
	ActPublish  ActionKind = "publish"
	ActLog      ActionKind = "log"
)

// Message is one event the rules look at: a message, an occupant joining or
// leaving a room, or a room's subject changing.
type Message struct {
	Kind        EventKind // KindMessage (default), KindJoin, KindLeave, KindSubject
	Type        string    // groupchat | chat | headline | normal; default groupchat in a room, else chat
	From        string    // full JID of the sender (for groupchat: room@service/nick)
	Room        string    // bare room JID for room traffic, "" otherwise
	Nick        string    // occupant nick in a room; for chat: the sender's localpart
	RealJID     string    // occupant's real bare JID when known
	Role        string    // MUC role of the occupant
	Affiliation string    // MUC affiliation of the occupant
	Body        string
	Subject     string
	BotNick     string // the bot's nick in this room (for mention and self checks)
	BotJID      string // the bot's bare JID
	Delayed     bool   // history / delayed delivery: never triggers
}

// Action is something the bot should do because a rule applied. The rules
// engine only describes it; the bot performs it.
type Action struct {
	Rule    string     // name of the rule (or cron job) that produced it
	Kind    ActionKind // reply | send | headline | subject | kick | ban | voice | devoice | invite | publish | log
	To      string     // target JID: room bare JID for groupchat, full/bare JID for chat/headline; invitee for invite; NATS subject for publish
	Type    string     // message type to send: groupchat | chat | headline | normal
	Text    string     // rendered body / subject / reason / log line / payload
	Nick    string     // target occupant for kick/ban/voice/devoice
	Subject string     // new room subject (subject), or the subject of a message
	Room    string     // the room of subject, kick, ban, voice, devoice and invite
}

// Outgoing reports whether a is sent to the XMPP server (as opposed to
// publish and log, which stay local or go to NATS).
func (a Action) Outgoing() bool {
	return a.Kind != ActPublish && a.Kind != ActLog
}

// Permitted reports whether a bot with the given MUC role and affiliation in
// the action's room may perform a, following XEP-0045: kick, voice, devoice
// and subject need the moderator role, ban needs the admin or owner
// affiliation. Other actions need no room privilege. The server has the last
// word (a room may let anyone change its subject, or protect an owner from a
// kick); this check spares the obviously refused request.
func (a Action) Permitted(role, affiliation string) bool {
	switch a.Kind {
	case ActKick, ActVoice, ActDevoice, ActSubject:
		return role == "moderator"
	case ActBan:
		return affiliation == "admin" || affiliation == "owner"
	}
	return true
}

// Data is what templates see as dot.
type Data struct {
	Rule        string            // name of the rule
	Kind        string            // message | join | leave | subject
	Type        string            // message type
	From        string            // sender's full JID
	Room        string            // room bare JID or ""
	Nick        string            // sender's nick
	RealJID     string            // sender's real bare JID when known
	Role        string            // sender's MUC role
	Affiliation string            // sender's MUC affiliation
	Body        string            // message body
	Subject     string            // message or room subject
	BotNick     string            // the bot's nick
	Match       []string          // submatches of the match regex (index 0 is the whole match)
	Groups      map[string]string // named groups of the match regex
}

// bare strips the resource of a JID.
func bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// resource returns the resource of a JID, or "".
func resource(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[i+1:]
	}
	return ""
}

// localpart returns the local part of a JID, or "".
func localpart(jid string) string {
	b := bare(jid)
	if i := strings.IndexByte(b, '@'); i >= 0 {
		return b[:i]
	}
	return ""
}
