package main

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

const (
	nsMUC     = "http://jabber.org/protocol/muc"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
	nsPing    = "urn:xmpp:ping"
)

// client is one load-generating user. Its reader goroutine owns the input
// side of the session; writes of raw stanzas take mellium's output lock so
// they never interleave with anything mellium writes.
type client struct {
	sess *xmpp.Session
	conn net.Conn
	nick string // room nick and the name the bot answers with

	writeMu sync.Mutex

	// onStanza sees every top-level element the reader parsed; it runs on
	// the reader goroutine.
	onStanza func(c *client, s *inStanza)
	done     chan struct{} // closed when the reader ends
	readErr  error
}

// inStanza is what the reader keeps of an element: enough to recognise a
// reply, a room presence or a ping.
type inStanza struct {
	name     string
	from     string
	typ      string
	id       string
	body     string
	statuses []string
	ping     bool
	query    bool // an iq get or set with a payload
}

// login connects to addr, negotiates STARTTLS and SASL, binds a resource and
// sends initial presence.
func login(ctx context.Context, addr string, tlsCfg *tls.Config, user jid.JID, password string, nick string) (*client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	cfg := tlsCfg.Clone()
	cfg.ServerName = user.Domainpart()
	sess, err := xmpp.NewClientSession(ctx, user, conn,
		xmpp.StartTLS(cfg),
		xmpp.SASL("", password, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("log in as %s: %w", user, err)
	}
	_ = conn.SetDeadline(time.Time{})
	c := &client{sess: sess, conn: sess.Conn(), nick: nick, done: make(chan struct{})}
	if err := c.write([]byte("<presence/>")); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// start runs the reader; on is called for each element.
func (c *client) start(on func(*client, *inStanza)) {
	c.onStanza = on
	go c.read()
}

// write sends raw, which must be exactly one well-formed element.
func (c *client) write(raw []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	w := c.sess.TokenWriter() // mellium's output lock
	defer w.Close()
	if err := w.Flush(); err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(raw)
	return err
}

// close ends the stream and the connection.
func (c *client) close() {
	c.writeMu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.sess.Close()
	c.writeMu.Unlock()
	if c.onStanza != nil {
		select {
		case <-c.done:
		case <-time.After(time.Second):
		}
	}
	_ = c.conn.Close()
}

// read parses the input one top-level element at a time, keeping only what
// inStanza holds.
func (c *client) read() {
	defer close(c.done)
	r := c.sess.TokenReader()
	defer r.Close()
	var err error
	for {
		var tok xml.Token
		if tok, err = r.Token(); err != nil {
			break
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var s *inStanza
		if s, err = readStanza(r, start); err != nil {
			break
		}
		if s.ping || s.query {
			c.answer(s)
			continue
		}
		c.onStanza(c, s)
	}
	if !errors.Is(err, io.EOF) {
		c.readErr = err
	}
}

// answer replies to an iq request: a ping with a result, anything else with
// service-unavailable.
func (c *client) answer(s *inStanza) {
	if s.typ != "get" && s.typ != "set" {
		return
	}
	var b strings.Builder
	b.WriteString("<iq id='")
	xml.EscapeText(&b, []byte(s.id))
	b.WriteString("' to='")
	xml.EscapeText(&b, []byte(s.from))
	if s.ping {
		b.WriteString("' type='result'/>")
	} else {
		b.WriteString("' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	}
	_ = c.write([]byte(b.String()))
}

// readStanza reads the rest of the element that start opened.
func readStanza(r xml.TokenReader, start xml.StartElement) (*inStanza, error) {
	s := &inStanza{name: start.Name.Local}
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "from":
			s.from = a.Value
		case "type":
			s.typ = a.Value
		case "id":
			s.id = a.Value
		}
	}
	depth := 1
	inBody := false
	var body strings.Builder
	for depth > 0 {
		tok, err := r.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && t.Name.Local == "body" && !inBody && body.Len() == 0:
				inBody = true
			case depth == 2 && s.name == "iq":
				s.query = t.Name.Space != nsPing
				s.ping = t.Name.Space == nsPing && t.Name.Local == "ping"
			case depth == 3 && t.Name.Local == "status" && t.Name.Space == nsMUCUser:
				for _, a := range t.Attr {
					if a.Name.Local == "code" {
						s.statuses = append(s.statuses, a.Value)
					}
				}
			}
		case xml.EndElement:
			depth--
			if depth == 1 {
				inBody = false
			}
		case xml.CharData:
			if inBody {
				body.Write(t)
			}
		}
	}
	s.body = body.String()
	return s, nil
}

// hasStatus reports whether the presence carries the MUC status code.
func (s *inStanza) hasStatus(code string) bool {
	for _, c := range s.statuses {
		if c == code {
			return true
		}
	}
	return false
}

// escape returns s escaped for an XML attribute or text.
func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// bareOf returns the bare part of a JID string.
func bareOf(addr string) string {
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		return addr[:i]
	}
	return addr
}

// resourceOf returns the resource part of a JID string.
func resourceOf(addr string) string {
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
