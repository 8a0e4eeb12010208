package bot

import (
	"encoding/xml"
	"runtime"
	"runtime/debug"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/disco"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/version"
	"mellium.im/xmpp/xtime"

	"crier/bot/outbox"
	"crier/rules"
)

// maxInBody is the largest incoming body the bot looks at; larger ones are
// rejected and counted (a server normally limits stanzas well below this).
const maxInBody = 64 << 10

// inStanza is the part of an incoming message or presence the bot reads.
type inStanza struct {
	XMLName xml.Name
	ID      string     `xml:"id,attr"`
	From    string     `xml:"from,attr"`
	To      string     `xml:"to,attr"`
	Type    string     `xml:"type,attr"`
	Body    []langText `xml:"body"`
	Subject []langText `xml:"subject"`
	Delay   *struct{}  `xml:"urn:xmpp:delay delay"`
	OldDly  *struct{}  `xml:"jabber:x:delay x"`
	// DelayFrom is who added the delay: a room for its history, the
	// bot's own server or account for what the server kept and delivers
	// late (stanzas resent after a stream resumption, offline storage).
	DelayFrom string       `xml:"-"`
	MUCUser   *mucUserX    `xml:"http://jabber.org/protocol/muc#user x"`
	Error     *stanzaError `xml:"error"`
	// StanzaIDs are the XEP-0359 stanza-ids on the stanza; OccupantID the
	// XEP-0421 occupant id a room put on it.
	StanzaIDs  []stanzaID `xml:"-"`
	OccupantID string     `xml:"-"`
}

// stanzaID is an XEP-0359 <stanza-id/>.
type stanzaID struct{ ID, By string }

// stanzaIDBy returns the stanza-id added by the entity by (a room).
func (st *inStanza) stanzaIDBy(by string) string {
	for _, s := range st.StanzaIDs {
		if s.By == by {
			return s.ID
		}
	}
	return ""
}

type langText struct {
	Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Text string `xml:",chardata"`
}

type mucUserX struct {
	Items  []mucItem `xml:"item"`
	Status []struct {
		Code int `xml:"code,attr"`
	} `xml:"status"`
}

type mucItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr"`
	Nick        string `xml:"nick,attr"`
	Reason      string `xml:"reason"`
}

// stanzaError is an <error/> child, reduced to its defined condition.
type stanzaError struct {
	Type      string
	Condition string
	Text      string
}

// UnmarshalXML reads the first child in the stanza-errors namespace as the
// condition.
func (e *stanzaError) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			e.Type = a.Value
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var s struct {
				Text string `xml:",chardata"`
			}
			if err := d.DecodeElement(&s, &t); err != nil {
				return err
			}
			if t.Name.Local == "text" {
				e.Text = s.Text
			} else if e.Condition == "" && t.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" {
				e.Condition = t.Name.Local
			}
		case xml.EndElement:
			return nil
		}
	}
}

func pickText(ts []langText) (string, bool) {
	if len(ts) == 0 {
		return "", false
	}
	for _, t := range ts {
		if t.Lang == "" || t.Lang == "en" {
			return t.Text, true
		}
	}
	return ts[0].Text, true
}

// handler is the root of everything the server sends. mellium calls it for
// each top-level element, one at a time, on the session's reading goroutine:
// it must never block on the network, and it never returns an error, which
// mellium would turn into the end of the session.
type handler struct {
	b   *Bot
	iq  *mux.ServeMux
	jid jid.JID // the bound JID of this session
}

func (b *Bot) newHandler(self jid.JID) *handler {
	ident := identities{{Category: "client", Type: "bot", Name: "crier"}}
	feats := features{
		{Var: "http://jabber.org/protocol/disco#info"},
		{Var: "http://jabber.org/protocol/disco#items"},
		{Var: "jabber:iq:version"},
	}
	m := mux.New(stanza.NSClient,
		disco.Handle(),
		ping.Handle(),
		version.Handle(version.Query{Name: "crier", Version: b.version, OS: runtime.GOOS}),
		xtime.Handle(xtime.Handler{TimeFunc: time.Now}),
		mux.Ident(ident),
		mux.Feature(feats),
		mux.Feature(b.iqr),
		mux.IQFunc(stanza.SetIQ, xml.Name{Space: "jabber:iq:roster", Local: "query"}, b.rosterPush),
	)
	return &handler{b: b, iq: m, jid: self}
}

type identities []info.Identity

// ForIdentities lists the bot's disco identity.
func (ids identities) ForIdentities(node string, f func(info.Identity) error) error {
	if node != "" {
		return nil
	}
	for _, i := range ids {
		if err := f(i); err != nil {
			return err
		}
	}
	return nil
}

type features []info.Feature

// ForFeatures lists features that have no mellium handler of their own to
// announce them.
func (fs features) ForFeatures(node string, f func(info.Feature) error) error {
	if node != "" {
		return nil
	}
	for _, x := range fs {
		if err := f(x); err != nil {
			return err
		}
	}
	return nil
}

// rosterPush acknowledges roster pushes from the bot's own server (RFC 6121
// 2.1.6); pushes from anyone else are ignored, as the RFC asks.
func (b *Bot) rosterPush(iq stanza.IQ, t xmlstream.TokenReadEncoder, _ *xml.StartElement) error {
	if !iq.From.Equal(jid.JID{}) && !iq.From.Equal(b.jid.Bare()) {
		return nil
	}
	_, err := xmlstream.Copy(t, iq.Result(nil))
	return err
}

// HandleXMPP dispatches one element. Panics and errors are logged and
// counted; the session goes on.
func (h *handler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) (err error) {
	defer func() {
		if p := recover(); p != nil {
			h.b.log.Error("panic while handling a stanza; stanza dropped", "stanza", start.Name.Local, "panic", p, "stack", string(debug.Stack()))
			h.b.met.rejected.WithLabelValues("panic").Inc()
			err = nil
		}
	}()
	switch start.Name.Local {
	case "iq":
		if isAnswer(start) {
			// An answer to one of the bot's own requests (see iq.go).
			d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
			tok, _ := d.Token() // the start element again, now known to the decoder
			st := tok.(xml.StartElement)
			if ok, err := h.b.answered(d, &st); ok {
				if err != nil {
					h.b.log.Warn("malformed iq answer", "err", err)
					h.b.met.rejected.WithLabelValues("bad_iq").Inc()
				}
				return nil
			}
			return nil // an answer nobody waits for (late, or not ours)
		}
		if h.b.component() {
			if h.b.refuseIQ(t, start) {
				return nil
			}
			// Every answer goes from the address asked, the default
			// one included (component.go).
			w := newAnswerWatch(t, start)
			defer w.answerIfSilent(h.b)
			t = w
		}
		handled, rest := h.pluginIQ(t, start)
		if handled {
			return nil
		}
		if err := h.iq.HandleXMPP(rest, start); err != nil {
			h.b.log.Warn("bad iq", "err", err)
			h.b.met.rejected.WithLabelValues("bad_iq").Inc()
		}
		return nil
	case "message", "presence":
		var st inStanza
		if err := readStanza(t, start, &st); err != nil {
			h.b.log.Warn("malformed stanza dropped", "stanza", start.Name.Local, "err", err)
			h.b.met.rejected.WithLabelValues("malformed").Inc()
			return nil
		}
		if start.Name.Local == "message" {
			h.b.onMessage(&st)
		} else {
			h.b.onPresence(&st)
		}
	default:
		// Stream management elements (<enabled/>, <r/>, <a/>) are the
		// transport's business; it has already seen them.
		if start.Name.Space == "urn:xmpp:sm:3" {
			return nil
		}
		h.b.met.rejected.WithLabelValues("unknown_element").Inc()
	}
	return nil
}

// isAnswer reports whether start is an iq result or error.
func isAnswer(start *xml.StartElement) bool {
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			return a.Value == "result" || a.Value == "error"
		}
	}
	return false
}

// onPresence routes presence: rooms first, then subscription requests.
func (b *Bot) onPresence(st *inStanza) {
	from, err := jid.Parse(st.From)
	if err != nil {
		b.met.rejected.WithLabelValues("bad_jid").Inc()
		return
	}
	if b.rooms.isRoom(from.Bare().String()) {
		p := mucPresence{From: from, Type: st.Type, Err: st.Error, OccupantID: st.OccupantID}
		if st.MUCUser != nil {
			for _, s := range st.MUCUser.Status {
				p.Statuses = append(p.Statuses, s.Code)
			}
			if len(st.MUCUser.Items) > 0 {
				p.Item = st.MUCUser.Items[0]
			}
		}
		b.rooms.handlePresence(p)
		return
	}
	switch st.Type {
	case "subscribe":
		b.onSubscribe(from)
	}
}

// onSubscribe answers a presence subscription request by the configured
// policy: "domain" (the default) accepts requests from the bot's own domain.
func (b *Bot) onSubscribe(from jid.JID) {
	if b.component() {
		return // a component keeps no roster
	}
	policy := b.cfg.Load().subscriptions
	ok := policy == "all" || (policy != "none" && from.Domainpart() == b.jid.Domainpart())
	typ := "unsubscribed"
	if ok {
		typ = "subscribed"
	}
	b.log.Info("presence subscription request", "from", from.Bare().String(), "answer", typ)
	_ = b.out.Enqueue(&outbox.Item{Kind: outbox.Presence, To: from.Bare().String(), Type: typ, Priority: outbox.High})
	if ok {
		_ = b.out.Enqueue(&outbox.Item{Kind: outbox.Presence, To: from.Bare().String(), Type: "subscribe", Priority: outbox.High})
	}
}

// onMessage turns a message into a rules.Message and runs the chain.
func (b *Bot) onMessage(st *inStanza) {
	if st.Type == "error" {
		cond := ""
		if st.Error != nil {
			cond = st.Error.Condition
		}
		if !b.out.HandleError(st.ID, stanza.Condition(cond)) {
			// Counted each; logged at most once per 10 s, with how many
			// went unlogged since (a fan-out to a thousand addresses that
			// do not exist answers a thousand errors).
			b.met.msgErrors.WithLabelValues(errorCondition(cond)).Inc()
			now := time.Now().UnixNano()
			if last := b.msgErrLog.Load(); now-last > int64(10*time.Second) && b.msgErrLog.CompareAndSwap(last, now) {
				b.log.Warn("message error from server (counted in crier_message_errors_total; at most one such line per 10 s)",
					"from", st.From, "condition", cond, "unlogged_before", b.msgErrQuiet.Swap(0))
			} else {
				b.msgErrQuiet.Add(1)
			}
		} else {
			b.met.rateLimited.Inc()
			b.log.Debug("message bounced as too fast; it goes out again later", "from", st.From, "id", st.ID, "condition", cond)
		}
		return
	}
	from, err := jid.Parse(st.From)
	if err != nil {
		b.met.rejected.WithLabelValues("bad_jid").Inc()
		return
	}
	body, hasBody := pickText(st.Body)
	subject, hasSubject := pickText(st.Subject)
	if len(body) > maxInBody {
		b.log.Warn("message body too large, ignored", "from", st.From, "bytes", len(body))
		b.met.rejected.WithLabelValues("body_too_large").Inc()
		return
	}
	// History (a room's, or anything a sender marked as old) never
	// triggers anything. A delay added by the bot's own server is not
	// history: the message was sent to the bot live and held while it had
	// no connection (resent after a resumption, or stored offline).
	// (ejabberd marks resent stanzas as from the server's domain, Prosody
	// as from the account's bare JID.)
	delayed := (st.Delay != nil || st.OldDly != nil) && st.DelayFrom != b.jid.Domainpart() && st.DelayFrom != b.bare
	bare := from.Bare().String()
	if bare == b.bare {
		return // our own message (carbons, echoes)
	}
	if b.component() {
		if from.Domainpart() == b.jid.Domainpart() {
			return // from an address of our own
		}
		to, err := jid.Parse(st.To)
		if err != nil || !b.served(to) {
			b.refuseUnserved(st)
			return
		}
		if st.Type != "groupchat" && !b.rooms.isRoom(bare) {
			b.noteAddressed(bare, to.Bare().String())
		}
	}
	typ := st.Type
	if typ == "" {
		typ = "normal"
	}
	m := b.baseMessage()
	m.Type = typ
	m.From = st.From
	m.Body = body
	m.Subject = subject
	m.Delayed = delayed
	// The occupant id is trusted only from a room (which sets it).
	var stanzaID, occID string
	if typ == "groupchat" {
		occID = st.OccupantID
	}

	if typ == "groupchat" {
		if !b.rooms.isRoom(bare) {
			b.met.rejected.WithLabelValues("unknown_room").Inc()
			return
		}
		nick := from.Resourcepart()
		m.Room = bare
		m.Nick = nick
		m.BotNick = b.rooms.nick(bare)
		if nick == m.BotNick || delayed {
			return // the bot itself, or history
		}
		if hasSubject && !hasBody {
			if b.rooms.subject(bare) {
				m.Kind = rules.KindSubject
				b.chain.enqueue(&chainItem{m: m, ev: eventOf(&m, st.ID, "", "")})
			}
			return
		}
		if occ, ok := b.rooms.occupantOf(bare, nick); ok {
			m.Role, m.Affiliation, m.RealJID = occ.role, occ.affiliation, occ.realJID
			if occID == "" {
				occID = occ.occupantID
			}
		}
		stanzaID = st.stanzaIDBy(bare)
	} else {
		m.RealJID = bare
		m.Nick = from.Localpart()
		if b.rooms.isRoom(bare) {
			// A private message from a room occupant: answer privately.
			// The room's JID is not the sender's.
			m.RealJID = ""
			m.Nick = from.Resourcepart()
			if occ, ok := b.rooms.occupantOf(bare, m.Nick); ok {
				m.Role, m.Affiliation, m.RealJID = occ.role, occ.affiliation, occ.realJID
			}
		}
	}
	if !hasBody || delayed {
		return
	}
	ev := eventOf(&m, st.ID, stanzaID, occID)
	if m.Room == "" && b.rooms.isRoom(bare) {
		ev.Room = bare // a private message through the room
	}
	if b.leader() {
		b.observe(&ev)
	}
	b.chain.enqueue(&chainItem{m: m, ev: ev})
}

// occupantEvent feeds joins, leaves and nick changes to the chain.
func (b *Bot) occupantEvent(kind rules.EventKind, room, nick string, occ occupant, extra string) {
	m := b.baseMessage()
	m.Kind = kind
	m.Type = "groupchat"
	m.Room = room
	m.Nick = nick
	m.From = room + "/" + nick
	m.Role, m.Affiliation, m.RealJID = occ.role, occ.affiliation, occ.realJID
	ev := eventOf(&m, "", "", occ.occupantID)
	if kind == rules.KindNick {
		ev.NewNick = extra
	}
	// The MUC manager calls this with its lock held: enqueue never
	// blocks, and the chain runs later on its own goroutine.
	b.chain.enqueue(&chainItem{m: m, ev: ev})
}

var _ xmpp.Handler = (*handler)(nil)
