package bot

// The bot as an XEP-0114 component ([xmpp] transport = "component"): it
// owns a domain and speaks from addresses on it. Every stanza it writes
// carries a from: the occupant address for rooms, the address a chat
// partner wrote to for the answers to that partner, [xmpp] from
// otherwise (or the from a relay or webhook gave). Messages to any
// address of the domain are read (or, with [xmpp] addresses, to those
// listed); the others are answered service-unavailable.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"crier/bot/outbox"
)

// maxPeers bounds the chat partners whose last addressed address is kept.
const maxPeers = 4096

// compState is the component's memory of who wrote to which address.
type compState struct {
	mu   sync.Mutex
	last map[string]string // partner's bare JID -> bare address it wrote to
}

// component reports whether the bot is an XEP-0114 component.
func (b *Bot) component() bool { return b.cfg.Load().cfg.XMPP.Component() }

// ownAddr is the bot's default address as a component ([xmpp] from).
func (b *Bot) ownAddr() string { return b.cfg.Load().cfg.XMPP.From }

// occupantAddr is the full address the component joins rooms from.
func (b *Bot) occupantAddr() string {
	x := b.cfg.Load().cfg.XMPP
	return x.From + "/" + x.Resource
}

// defaultNick is the nick of a room joined without one: the localpart of
// the bot's JID, or of a component's own address.
func (b *Bot) defaultNick() string {
	if b.component() {
		if j, err := jid.Parse(b.ownAddr()); err == nil {
			return j.Localpart()
		}
	}
	return b.jid.Localpart()
}

// serverAddr is where keepalive and delivery pings go: the bot's own
// server, which for a component is [xmpp] server_domain.
func (b *Bot) serverAddr() jid.JID {
	x := b.cfg.Load().cfg.XMPP
	if x.Component() {
		if d, err := jid.Parse(x.ServerDomain); err == nil {
			return d
		}
	}
	return b.jid.Domain()
}

// served reports whether the component answers at to: its domain, its
// own address, its occupant address, and every address of the domain
// unless [xmpp] addresses lists the ones served.
func (b *Bot) served(to jid.JID) bool {
	x := b.cfg.Load().cfg.XMPP
	if to.Domainpart() != b.jid.Domainpart() {
		return false
	}
	bare := to.Bare().String()
	if to.Localpart() == "" || bare == x.From || len(x.Addresses) == 0 {
		return true
	}
	for _, a := range x.Addresses {
		if a == bare {
			return true
		}
	}
	return false
}

// noteAddressed remembers that peer wrote to the bot's address to, so
// that what the bot says to peer next goes from there.
func (b *Bot) noteAddressed(peer, to string) {
	c := &b.comp
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = make(map[string]string)
	}
	if _, ok := c.last[peer]; !ok && len(c.last) >= maxPeers {
		for k := range c.last { // forget one at random
			delete(c.last, k)
			break
		}
	}
	c.last[peer] = to
}

// addressFor returns the address the component speaks to peer (a bare
// JID) from.
func (b *Bot) addressFor(peer string) string {
	c := &b.comp
	c.mu.Lock()
	a := c.last[peer]
	c.mu.Unlock()
	if a != "" {
		return a
	}
	return b.ownAddr()
}

// fromFilter returns the writer hook that puts the from on each stanza a
// component writes (nil for a client, whose server sets it).
func (b *Bot) fromFilter() func(*xml.StartElement) {
	if !b.component() {
		return nil
	}
	domain := b.jid.Domainpart()
	return func(start *xml.StartElement) {
		var to, from string
		fromAt := -1
		for i, a := range start.Attr {
			switch a.Name.Local {
			case "to":
				to = a.Value
			case "from":
				from, fromAt = a.Value, i
			}
		}
		// Split by hand: this runs for every stanza, and the addresses
		// are the bot's own or the server's, already normalised.
		bare := to
		if i := strings.IndexByte(bare, '/'); i >= 0 {
			bare = bare[:i]
		}
		want := from
		switch {
		case bare != "" && b.rooms.isRoom(bare):
			// A room knows the bot by its occupant address alone.
			want = b.occupantAddr()
		case from != "":
		case bare != "" && !strings.Contains(bare, "@") && bare != domain:
			// A server (the bot's own: pings): from the domain itself.
			want = domain
		case bare != "":
			want = b.addressFor(bare)
		default:
			want = b.ownAddr()
		}
		if fromAt >= 0 {
			start.Attr[fromAt].Value = want
			return
		}
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: want})
	}
}

// refuseUnserved answers a message to an address of the domain that the
// component does not serve with service-unavailable, logs and counts it.
func (b *Bot) refuseUnserved(st *inStanza) {
	b.met.rejected.WithLabelValues("unserved_address").Inc()
	b.log.Info("message to an address this component does not serve; answered service-unavailable", "to", st.To, "from", st.From)
	if st.Type == "error" || st.From == "" {
		return
	}
	to, err := jid.Parse(st.To)
	if err != nil {
		return
	}
	_ = b.out.Enqueue(&outbox.Item{Kind: outbox.Message, From: to.String(), To: st.From, Type: "error", ID: st.ID, Priority: outbox.High,
		Payload: func() xml.TokenReader { return serviceUnavailable() }})
}

// serviceUnavailable is the <error/> of a refused stanza (RFC 6120 8.3.3.19).
func serviceUnavailable() xml.TokenReader {
	cond := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-stanzas", Local: "service-unavailable"}})
	return xmlstream.Wrap(cond, xml.StartElement{Name: xml.Name{Local: "error"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "cancel"}}})
}

// checkFrom checks a plugin's Message.From.
func (b *Bot) checkFrom(from string) (string, error) {
	if from == "" {
		return "", nil
	}
	if !b.component() {
		return "", fmt.Errorf("plugins: a message from %s needs [xmpp] transport = \"component\"", from)
	}
	j, err := jid.Parse(from)
	if err != nil || j.Domainpart() != b.jid.Domainpart() || j.Resourcepart() != "" {
		return "", fmt.Errorf("plugins: %q is not a bare address on the component's domain %s", from, b.jid.Domainpart())
	}
	return j.String(), nil
}

// stanzaStarts calls f on the start element of each top-level element of
// r (the outbox may write several stanzas in one Send).
type stanzaStarts struct {
	r     xml.TokenReader
	f     func(*xml.StartElement)
	depth int
}

func (s *stanzaStarts) Token() (xml.Token, error) {
	tok, err := s.r.Token()
	switch t := tok.(type) {
	case xml.StartElement:
		s.depth++
		if s.depth == 1 {
			t.Attr = append([]xml.Attr(nil), t.Attr...)
			s.f(&t)
			return t, err
		}
	case xml.EndElement:
		s.depth--
	}
	return tok, err
}

// refuseIQ answers an iq request to an address the component does not
// serve with service-unavailable; it reports whether it did.
func (b *Bot) refuseIQ(t xmlstream.TokenReadEncoder, start *xml.StartElement) bool {
	var to, from, id, typ string
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "to":
			to = a.Value
		case "from":
			from = a.Value
		case "id":
			id = a.Value
		case "type":
			typ = a.Value
		}
	}
	tj, err := jid.Parse(to)
	if err == nil && b.served(tj) {
		return false
	}
	b.met.rejected.WithLabelValues("unserved_address").Inc()
	b.log.Info("iq to an address this component does not serve; answered service-unavailable", "to", to, "from", from)
	if typ != "get" && typ != "set" {
		return true
	}
	reply := xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "type"}, Value: "error"},
		{Name: xml.Name{Local: "id"}, Value: id},
		{Name: xml.Name{Local: "from"}, Value: to},
		{Name: xml.Name{Local: "to"}, Value: from},
	}}
	if _, err := xmlstream.Copy(t, xmlstream.Wrap(serviceUnavailable(), reply)); err != nil {
		b.log.Warn("cannot answer an iq", "err", err)
	}
	return true
}

// answerWatch is the writer of a component's iq handlers: it puts the
// address asked as the from of an answer that has none, and notes whether
// an answer was written. mellium answers a request its handler left
// unanswered with service-unavailable, but without a from, which ends a
// component's stream (ejabberd: improper-addressing); answerIfSilent
// writes that answer itself, from the address asked.
type answerWatch struct {
	xmlstream.TokenReadEncoder
	id, to, from, typ string
	depth             int
	answered          bool
}

func newAnswerWatch(t xmlstream.TokenReadEncoder, start *xml.StartElement) *answerWatch {
	w := &answerWatch{TokenReadEncoder: t}
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "id":
			w.id = a.Value
		case "to":
			w.to = a.Value
		case "from":
			w.from = a.Value
		case "type":
			w.typ = a.Value
		}
	}
	return w
}

// EncodeToken writes tok, with the from of a top-level element filled in.
func (w *answerWatch) EncodeToken(tok xml.Token) error {
	switch t := tok.(type) {
	case xml.StartElement:
		if w.depth == 0 {
			hasFrom := false
			for _, a := range t.Attr {
				switch {
				case a.Name.Local == "from":
					hasFrom = true
				case a.Name.Local == "id" && a.Value == w.id:
					w.answered = true
				}
			}
			if !hasFrom && w.to != "" {
				t.Attr = append(append([]xml.Attr(nil), t.Attr...), xml.Attr{Name: xml.Name{Local: "from"}, Value: w.to})
			}
			tok = t
		}
		w.depth++
	case xml.EndElement:
		w.depth--
	}
	return w.TokenReadEncoder.EncodeToken(tok)
}

// Encode and EncodeElement go through EncodeToken.
func (w *answerWatch) Encode(v any) error { return w.EncodeElement(v, xml.StartElement{}) }

// EncodeElement marshals v as tokens through EncodeToken.
func (w *answerWatch) EncodeElement(v any, start xml.StartElement) error {
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	var err error
	if start.Name.Local == "" {
		err = e.Encode(v)
	} else {
		err = e.EncodeElement(v, start)
	}
	if err != nil {
		return err
	}
	d := xml.NewDecoder(&b)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := w.EncodeToken(xml.CopyToken(tok)); err != nil {
			return err
		}
	}
}

// answerIfSilent answers a get or set nothing answered.
func (w *answerWatch) answerIfSilent(b *Bot) {
	if w.answered || (w.typ != "get" && w.typ != "set") {
		return
	}
	reply := xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "type"}, Value: "error"},
		{Name: xml.Name{Local: "id"}, Value: w.id},
		{Name: xml.Name{Local: "to"}, Value: w.from},
	}}
	if _, err := xmlstream.Copy(w, xmlstream.Wrap(serviceUnavailable(), reply)); err != nil {
		b.log.Warn("cannot answer an iq", "err", err)
	}
}
