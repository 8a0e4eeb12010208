package plugins

import (
	"context"
	"time"
)

// EventKind is what happened in an Event.
type EventKind int

// Kinds of Event.
const (
	// EventMessage is a message with a body, in a room or one-to-one.
	EventMessage EventKind = iota + 1
	// EventJoin is an occupant joining a room the bot is in.
	EventJoin
	// EventLeave is an occupant leaving (or kicked, banned) a room.
	EventLeave
	// EventNick is an occupant changing nick: Nick is the old one, NewNick
	// the new one.
	EventNick
	// EventSubject is a room's subject changed (Subject).
	EventSubject
)

// String returns the kind's name as rules and logs use it.
func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventNick:
		return "nick"
	case EventSubject:
		return "subject"
	}
	return "unknown"
}

// Event is something the bot received, as the chain and subscribers see
// it.
type Event struct {
	Kind EventKind
	Time time.Time
	// Type is the message type: groupchat | chat | normal | headline.
	Type string
	// From is the sender's full JID (room/nick in a room).
	From string
	// Room is the bare room JID for room messages and occupant events, and
	// for private messages from a room occupant.
	Room string
	Nick string
	// NewNick is the occupant's new nick (EventNick).
	NewNick string
	Body    string
	Subject string
	// ID is the stanza's id; StanzaID the room's XEP-0359 stanza-id (what
	// XEP-0425 retraction names); OccupantID the room's XEP-0421 id.
	ID, StanzaID, OccupantID string
	// RealJID is the occupant's real bare JID when the room shows it, or
	// the sender's bare JID one-to-one.
	RealJID string
	// Role and Affiliation are the occupant's in the room.
	Role, Affiliation string
	// BotNick is the bot's nick in the room.
	BotNick string
}

// Private reports whether the event is a one-to-one message.
func (e *Event) Private() bool { return e.Kind == EventMessage && e.Type != "groupchat" }

// Verdict is what a chain link decides about an event.
type Verdict int

// Verdicts.
const (
	// Continue passes the event on to the next link.
	Continue Verdict = iota
	// Stop ends the chain: no later link (and no rule) sees the event.
	Stop
)

// Link is a plugin that sits in the message chain ([bot] chain). Handle
// runs on the chain's one dispatch goroutine, in order per room: it must
// not block on the network or disk for long (hand such work to a
// goroutine of its own); the Host's methods never block.
type Link interface {
	Handle(ctx context.Context, ev *Event) Verdict
}

// Fallback is a link told, after the whole chain ran, that no link stopped
// the event and no rule matched it (the commands plugin answers an
// unknown command there).
type Fallback interface {
	Unhandled(ctx context.Context, ev *Event)
}

// Observer is a plugin that sees every received message with a body
// before the chain runs (the XMPP to NATS direction). Observe must not
// block; ev must not be kept or changed.
type Observer interface {
	Observe(ev *Event)
}
