package plugins

import (
	"bytes"
	"context"
	"encoding/xml"
	"time"

	"crier/internal/state"
)

// Message is a stanza a plugin asks the bot to send.
type Message struct {
	To string // bare or full JID; a room's bare JID for groupchat
	// From, when the bot is a component (Core.Component), is the address
	// on its domain the message is sent from (a bare JID; see
	// Core.CheckFrom). Empty is the bot's own address: the one a chat
	// partner last wrote to, else [xmpp] from. A room message always
	// goes from the bot's occupant address. A client bot refuses a From.
	From    string
	Type    string // chat | groupchat | headline | normal
	Body    string
	Subject string
	// OriginID is an XEP-0359 origin-id put on the stanza, so that a resent
	// copy can be recognised.
	OriginID string
	// Interactive marks an answer to someone who waits for it (a
	// command's reply): it goes ahead of bulk traffic (relayed events,
	// webhooks, scheduled posts), which is what a message without it is,
	// and is not refused because bulk traffic filled the outbox. It still
	// waits for its room to be joined and for the rate limits.
	Interactive bool
	// Work marks a message that is shared work, such as a relayed push,
	// rather than speech: with [ha] a standby sends it too, to a user
	// (never into a room, where only the leader is).
	Work bool
}

// ActionKind is what an Action does in a room.
type ActionKind int

// Kinds of Action.
const (
	// ActKick removes an occupant (role none).
	ActKick ActionKind = iota + 1
	// ActBan makes the occupant's real JID (or JID) an outcast.
	ActBan
	// ActUnban removes an outcast (affiliation none); JID is required.
	ActUnban
	// ActVoice grants voice (role participant).
	ActVoice
	// ActDevoice revokes voice (role visitor): a mute.
	ActDevoice
	// ActSubject sets the room's subject to Text.
	ActSubject
	// ActInvite invites JID to the room (mediated invitation).
	ActInvite
	// ActRetract retracts the message StanzaID (XEP-0425 moderation).
	ActRetract
	// ActConfigure changes room configuration fields (Fields), e.g.
	// muc#roomconfig_moderatedroom or muc#roomconfig_membersonly.
	ActConfigure
)

// String returns the action's name as logs and audits use it.
func (k ActionKind) String() string {
	switch k {
	case ActKick:
		return "kick"
	case ActBan:
		return "ban"
	case ActUnban:
		return "unban"
	case ActVoice:
		return "voice"
	case ActDevoice:
		return "devoice"
	case ActSubject:
		return "subject"
	case ActInvite:
		return "invite"
	case ActRetract:
		return "retract"
	case ActConfigure:
		return "configure"
	}
	return "unknown"
}

// Action is something done in a room. The bot checks its own rights first
// (a kick needs moderator, a ban admin or owner) and refuses with
// ErrNoRights.
type Action struct {
	Kind ActionKind
	Room string // bare room JID
	// Nick names the occupant (kick, voice, devoice; ban when JID is
	// empty: the real JID is looked up).
	Nick string
	// JID is a bare JID (ban, unban, invite).
	JID string
	// Reason goes into the request's <reason/>; Text is the subject.
	Reason, Text string
	// StanzaID is the room's stanza-id of the message to retract.
	StanzaID string
	// Fields are room configuration fields (ActConfigure).
	Fields map[string]string
}

// Occupant is someone in a room, as the bot sees them.
type Occupant struct {
	Room, Nick        string
	Role, Affiliation string
	// RealJID is the bare real JID when the room shows it to the bot.
	RealJID string
	// OccupantID is the room's XEP-0421 occupant id, when it gives one.
	OccupantID string
	Joined     time.Time
}

// RoomInfo is a room the bot knows.
type RoomInfo struct {
	JID, Nick string
	// State is "joined", "joining", "waiting" (to rejoin), "left"...
	State string
	// Role and Affiliation are the bot's own in the room.
	Role, Affiliation string
	// Configured is true for [[rooms]] in the config; ByCommand for a room
	// joined by command (kept in the state store).
	Configured, ByCommand bool
	Occupants             int
	// Error is the last error of the room (a refused join), if any.
	Error string
}

// Status is the bot's connection and queues, for the status command.
type Status struct {
	Connected bool
	Transport string // tcp | bosh
	Server    string
	// StreamManagement is true when XEP-0198 is enabled on the session;
	// Resumable when the server allows resumption.
	StreamManagement, Resumable bool
	ConnectedSince              time.Time
	Started                     time.Time
	Version                     string
	OutboxDepth                 int
	Rooms                       []RoomInfo
	// Plugins holds each plugin's readiness and StatusReporter lines.
	Plugins []string
	// HA says, with [ha], whether this instance leads, who leads since
	// when, and who stands by.
	HA []string
}

// PluginInfo is one registered plugin, for the plugins command.
type PluginInfo struct {
	Name string
	// Configured: its config enables it; Running: started and not
	// disabled; Failed: disabled after a panic (Error says why).
	Configured, Running, Failed bool
	Error                       string
	InChain                     bool
}

// IQ is an iq request addressed to the bot, handed to a plugin's handler.
type IQ struct {
	ID, From, To string
	Type         string // get | set
	// Payload is the raw XML of the iq's child element.
	Payload []byte
	// Name is the child's name.
	Name xml.Name
}

// IQError is an iq error with what RFC 6120 and XEP-0050 put in it beyond
// a stanza.Error: an application-specific condition (XEP-0050's
// <bad-sessionid/>) and a copy of the request's child carrying notes. An
// IQHandler returns it (as *IQError) to have the Host send it.
type IQError struct {
	// Type is the error type: cancel, modify, auth or wait.
	Type string
	// Condition is the defined condition (urn:ietf:params:xml:ns:xmpp-stanzas),
	// e.g. "bad-request".
	Condition string
	// Text is a human-readable description; may be empty.
	Text string
	// App is the raw XML of an application-specific condition element,
	// e.g. <bad-sessionid xmlns='http://jabber.org/protocol/commands'/>.
	App []byte
	// Payload is raw XML the Host puts in the error iq before <error/>
	// (RFC 6120 §8.3.1 allows the request's child there).
	Payload []byte
}

// Error returns the condition and text.
func (e *IQError) Error() string {
	if e.Text == "" {
		return e.Condition
	}
	return e.Condition + ": " + e.Text
}

// Element returns the raw XML of the <error/> element (without Payload).
func (e *IQError) Element() []byte {
	var b bytes.Buffer
	b.WriteString(`<error type="`)
	_ = xml.EscapeText(&b, []byte(e.Type))
	b.WriteString(`"><`)
	_ = xml.EscapeText(&b, []byte(e.Condition))
	b.WriteString(` xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>`)
	if e.Text != "" {
		b.WriteString(`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">`)
		_ = xml.EscapeText(&b, []byte(e.Text))
		b.WriteString(`</text>`)
	}
	b.Write(e.App)
	b.WriteString(`</error>`)
	return b.Bytes()
}

// IQHandler answers one iq request. It runs on a goroutine of its own (not
// the session's reader). It returns the raw XML of the result's child
// (nil for an empty result) or an error: a *IQError (found with
// errors.As) or a stanza.Error from mellium.im/xmpp/stanza is sent as it
// is, any other error as internal-server-error (and logged).
type IQHandler func(ctx context.Context, iq IQ) ([]byte, error)

// DiscoItem is an item of a disco#items answer.
type DiscoItem struct {
	JID, Node, Name string
}

// DiscoNode answers disco#info and disco#items queries on one node for a
// requester (full JID): a plugin lists what that requester may see.
type DiscoNode interface {
	// Info returns the node's identities (category/type/name triples) and
	// features; ok false answers item-not-found.
	Info(from, node string) (identities [][3]string, features []string, ok bool)
	// Items returns the node's items for from. An item with an empty JID
	// names the bot itself: the Host fills in the JID the query was sent
	// to.
	Items(from, node string) []DiscoItem
}

// Host is the running bot as plugins see it. Its methods never block on
// the network; they are safe for concurrent use.
type Host interface {
	// Send queues m. It returns an error at once (ErrBusy, ErrStopped,
	// ErrNotRoom...) and then done is never called; or it returns nil and
	// done is called exactly once later: with nil once the XMPP server has
	// the stanza, or with the reason it was lost. done may be nil.
	Send(m Message, done func(error)) error
	// Do carries out a room action, with the same contract as Send: an
	// error now (ErrNoRights, ErrNotRoom, ErrUnknownOccupant, ErrNoJID,
	// ErrUnsupported) and no done, or nil and done later with the server's
	// answer (a stanza.Error when it refused).
	Do(a Action, done func(error)) error
	// Occupant looks up an occupant of a room by nick.
	Occupant(room, nick string) (Occupant, bool)
	// Occupants lists a room's occupants.
	Occupants(room string) []Occupant
	// IsRoom reports whether jid (bare) is a room the bot is in or joins.
	IsRoom(jid string) bool
	// Rooms lists the rooms the bot knows, with its own state in each.
	Rooms() []RoomInfo
	// JoinRoom joins a room by command: it stays joined across restarts
	// (kept in the store) until LeaveRoom. It returns once the join is
	// requested; RoomInfo shows the outcome.
	JoinRoom(room, nick, password string) error
	// LeaveRoom leaves a room and forgets it (a configured room stays left
	// until the next restart or reload).
	LeaveRoom(room string) error
	// Status reports the connection, rooms and queues.
	Status() Status
	// Speaking reports whether this instance may speak now: always
	// without [ha]; with it, while this instance holds the leader's lease.
	// A message queued while it is false is dropped before it is written
	// (done gets an error), except shared work to a user (Message.Work):
	// a plugin that takes work from a shared queue, as the NATS relay's
	// JetStream consumer, may deliver that on a standby and leave the
	// rooms to the leader.
	Speaking() bool
	// HandleIQ registers h for iq requests of type typ ("get" or "set")
	// whose child is name; feature, when not empty, is announced in the
	// bot's disco#info. A second registration of the same name and type
	// replaces the first.
	HandleIQ(typ string, name xml.Name, feature string, h IQHandler)
	// HandleDisco makes d answer disco#info and disco#items on node; the
	// bot's own disco#info then lists features given here too.
	HandleDisco(node string, d DiscoNode, features ...string)
	// State returns the plugin's namespace in the state store, at the
	// plugin's Spec.Schema; ErrNoStore when no store is configured.
	State() (state.Namespace, error)
	// SharedState returns the plugin's namespace in the NATS JetStream KV
	// bucket named bucket (created when missing), which every crier that
	// names the same bucket shares, whatever its XMPP account: through
	// [ha]'s NATS connection, else one made from [nats]. ErrUnsupported
	// when neither is configured. Each call for a bucket returns a handle
	// on the same store, closed when the bot stops.
	SharedState(bucket string) (state.Namespace, error)
	// Publish publishes data on a NATS subject through the Publisher
	// plugin, if one runs (ErrUnsupported otherwise).
	Publish(subject string, data []byte) error
	// Commands lists every command of the running plugins (Commander).
	// The commands plugin calls it for each command message: the Host may
	// return a shared slice that it replaces (never changes) when the set
	// of running plugins changes; callers must not modify it.
	Commands() []Command
	// Plugins lists the registered plugins and their state.
	Plugins() []PluginInfo
	// SetPluginEnabled starts or stops a configured plugin at run time.
	SetPluginEnabled(name string, on bool) error
	// ReloadPreview loads the config file again and describes what a
	// reload would change (an error when it would be refused).
	ReloadPreview() (diff string, err error)
	// Reload loads the config file again and applies it.
	Reload() error
}
