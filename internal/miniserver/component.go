package miniserver

// External components (XEP-0114, jabber:component:accept): a component
// owns a domain of its own and sends from any address on it. Each address
// it speaks from becomes an entity of its own here (an occupant of a room,
// the sender of an error), sharing the component's connection.

import (
	"bytes"
	"context"
	"crypto/sha1" // #nosec G505 -- XEP-0114 defines the handshake as SHA-1
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

const (
	nsComponent = "jabber:component:accept"
	// maxComponentAddrs bounds the addresses one component speaks from
	// at once; past it the oldest ones that are in no room are forgotten.
	maxComponentAddrs = 4096
)

// errHandshake is a refused component secret.
var errHandshake = errors.New("miniserver: component handshake refused")

// componentConn is what the server knows of one connected component.
type componentConn struct {
	addrs map[string]*client // full or bare address on the domain -> its entity
}

// AddComponent allows a component to connect for domain with secret; a
// component already connected keeps its connection.
func (s *Server) AddComponent(domain, secret string) error {
	d, err := jid.Parse(domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" || d.Domainpart() == s.domain || d.Domainpart() == s.mucDomain {
		return fmt.Errorf("%w: component domain %q", ErrBadConfig, domain)
	}
	if secret == "" {
		return fmt.Errorf("%w: component %s needs a secret", ErrBadConfig, domain)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compSecrets[d.Domainpart()] = secret
	return nil
}

// ComponentAddr returns the address of the component listener, or "".
func (s *Server) ComponentAddr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.compAddr
}

// ComponentConnected reports whether a component is connected for domain.
func (s *Server) ComponentConnected(domain string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.components[domain] != nil
}

// handleComponent runs one connection of the component listener.
func (s *Server) handleComponent(raw net.Conn) {
	tc, ok := s.track(raw)
	if !ok {
		s.stats.refused.Add(1)
		_ = raw.Close()
		return
	}
	defer s.untrack(tc)
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
			s.log.Error("component handler panicked", "err", r)
		}
	}()
	if !s.waitHearing(tc) {
		return
	}
	lc := &limitConn{Conn: tc, max: int64(s.maxStanza) + 64<<10}
	_ = lc.SetDeadline(time.Now().Add(negotiateTimeout))
	d := xml.NewDecoder(lc)
	c := &client{
		srv:   s,
		tc:    tc,
		lc:    lc,
		conn:  lc,
		out:   make(chan []byte, outQueue),
		quit:  make(chan struct{}),
		wdone: make(chan struct{}),
		comp:  &componentConn{addrs: make(map[string]*client)},
		read:  d,
	}
	domain, err := s.componentHandshake(lc, d, c)
	if err != nil {
		s.log.Info("component handshake failed", "remote", raw.RemoteAddr(), "err", err)
		return
	}
	_ = lc.SetDeadline(time.Time{})
	s.stats.logins.Add(1)
	s.log.Debug("component connected", "domain", domain)
	go c.writeLoop()
	c.readLoop()
	s.mu.Lock()
	s.endComponentLocked(c)
	wdone := c.wdone
	s.mu.Unlock()
	c.closeStream("")
	select {
	case <-wdone:
	case <-time.After(writeTimeout + time.Second):
	}
}

// componentHandshake reads the component's stream header, answers it and
// checks <handshake/>; on success c is the connected component of its
// domain before <handshake/> goes out, so that stanzas for it are routed
// from the moment it may send. It returns the component's domain.
func (s *Server) componentHandshake(w io.Writer, d *xml.Decoder, c *client) (string, error) {
	var start xml.StartElement
	for range 8 {
		tok, err := d.Token()
		if err != nil {
			return "", err
		}
		if st, ok := tok.(xml.StartElement); ok {
			start = st
			break
		}
	}
	if start.Name.Space != nsEtherx || start.Name.Local != "stream" {
		return "", errors.New("miniserver: no component stream header")
	}
	var ns, to string
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			ns = a.Value
		case a.Name.Space == "" && a.Name.Local == "to":
			to = a.Value
		}
	}
	id := randomID() + randomID()
	header := func(from string) {
		var b bytes.Buffer
		b.WriteString("<?xml version='1.0'?><stream:stream xmlns='" + nsComponent + "' xmlns:stream='" + nsEtherx + "' id='" + id + "'")
		if from != "" {
			b.WriteString(" from='")
			escape(&b, from)
			b.WriteByte('\'')
		}
		b.WriteByte('>')
		_, _ = w.Write(b.Bytes())
	}
	fail := func(cond string, err error) (string, error) {
		s.stats.streamErr.Add(1)
		_, _ = io.WriteString(w, streamError(cond))
		return "", err
	}
	if ns != nsComponent {
		header("")
		return fail("invalid-namespace", fmt.Errorf("miniserver: component stream in namespace %q", ns))
	}
	domain := strings.ToLower(to)
	s.mu.Lock()
	secret, known := s.compSecrets[domain]
	s.mu.Unlock()
	header(domain)
	if !known {
		return fail("host-unknown", fmt.Errorf("miniserver: no component %q", to))
	}
	if s.cfg.ComponentSM && !s.cfg.NoSM {
		// XEP-0114 has no features; a server may offer stream management
		// to components all the same (without resumption here).
		_, _ = io.WriteString(w, "<stream:features><sm xmlns='"+nsSM+"'/></stream:features>")
	}
	e, err := readElement(d, 1024)
	if err != nil {
		return "", err
	}
	if e.Name.Local != "handshake" || e.Name.Space != nsComponent {
		return fail("not-authorized", fmt.Errorf("miniserver: expected <handshake/>, got <%s>", e.Name.Local))
	}
	sum := sha1.Sum([]byte(id + secret)) // #nosec G401 -- XEP-0114
	want := hex.EncodeToString(sum[:])
	got := strings.ToLower(strings.TrimSpace(e.textOf()))
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.stats.authFailures.Add(1)
		return fail("not-authorized", fmt.Errorf("%w for %s", errHandshake, domain))
	}
	s.mu.Lock()
	taken := s.components[domain] != nil
	if !taken {
		c.full, _ = jid.New("", domain, "")
		c.bare = domain
		s.components[domain] = c
	}
	s.mu.Unlock()
	if taken {
		// As Prosody does by default (component_conflict_resolve =
		// "kick_new"): the connected component keeps its domain.
		return fail("conflict", fmt.Errorf("miniserver: component %s is already connected", domain))
	}
	if _, err := io.WriteString(w, "<handshake/>"); err != nil {
		s.mu.Lock()
		s.endComponentLocked(c)
		s.mu.Unlock()
		return "", err
	}
	return domain, nil
}

// textOf returns the text directly inside e.
func (e *el) textOf() string {
	var b strings.Builder
	for _, n := range e.Nodes {
		if n.E == nil {
			b.WriteString(n.Text)
		}
	}
	return b.String()
}

// nsEtherx is the namespace of the stream header (as the decoder
// resolves it).
const nsEtherx = "http://etherx.jabber.org/streams"

// toClientNS moves e and its children from the component namespace (the
// default of a component stream) to jabber:client, where the rest of the
// server expects stanzas.
func toClientNS(e *el) {
	if e.Name.Space == nsComponent {
		e.Name.Space = nsClient
	}
	for _, n := range e.Nodes {
		if n.E != nil {
			toClientNS(n.E)
		}
	}
}

// componentSenderLocked checks the from of a stanza of component c and
// returns the entity it is sent as (nil: the stream must end).
func (s *Server) componentSenderLocked(c *client, e *el) *client {
	toClientNS(e)
	from := e.attr("from")
	if from == "" || e.attr("to") == "" {
		// As ejabberd does (Prosody is lenient about the from).
		s.log.Info("component sent a stanza without from or to", "domain", c.bare, "stanza", e.Name.Local)
		c.closeStream("improper-addressing")
		return nil
	}
	j, err := jid.Parse(from)
	if err != nil || j.Domainpart() != c.bare {
		s.log.Info("component sent from an address not on its domain", "domain", c.bare, "from", from)
		c.closeStream("invalid-from")
		return nil
	}
	if j.Localpart() == "" && j.Resourcepart() == "" {
		return c
	}
	key := j.String()
	if v := c.comp.addrs[key]; v != nil {
		return v
	}
	if len(c.comp.addrs) >= maxComponentAddrs {
		for k, v := range c.comp.addrs {
			if !s.inAnyRoomLocked(v) {
				delete(c.comp.addrs, k)
				v.gone = true
			}
		}
	}
	v := &client{srv: s, tc: c.tc, lc: c.lc, full: j, bare: j.Bare().String(), owner: c}
	c.comp.addrs[key] = v
	return v
}

// inAnyRoomLocked reports whether c is an occupant of some room.
func (s *Server) inAnyRoomLocked(c *client) bool {
	for _, r := range s.rooms {
		if r.occupantOf(c) != nil {
			return true
		}
	}
	return false
}

// routeComponentLocked passes e on to the component serving to's domain,
// as it is (a component sees the address it was sent to). It reports
// false when to's domain is no component's. A stanza to a component that
// is not connected is answered service-unavailable.
func (s *Server) routeComponentLocked(c *client, e *el, to jid.JID) bool {
	dom := to.Domainpart()
	comp := s.components[dom]
	if comp == nil {
		if _, known := s.compSecrets[dom]; !known {
			return false
		}
		if e.Name.Local != "presence" {
			s.replyError(c, e, "cancel", "service-unavailable")
		}
		return true
	}
	b := e.bytes()
	comp.smSentLocked(b) // stream management, when the component enabled it
	comp.send(b)
	return true
}

// endComponentLocked takes every address of component c out of the rooms
// and forgets the component.
func (s *Server) endComponentLocked(c *client) {
	for k, v := range c.comp.addrs {
		s.detachLocked(v)
		delete(c.comp.addrs, k)
	}
	s.detachLocked(c)
	if s.components[c.bare] == c {
		delete(s.components, c.bare)
	}
}

// serveComponents accepts component connections on ln.
func (s *Server) serveComponents(ctx context.Context, ln net.Listener) {
	s.listeners = append(s.listeners, ln)
	s.acceptWG.Add(1)
	go func() {
		defer s.acceptWG.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				select {
				case <-s.closed:
					return
				case <-ctx.Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			go s.handleComponent(c)
		}
	}()
}

// OccupantJID returns the real JID of the occupant nick of a room.
func (s *Server) OccupantJID(roomName, nick string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[s.roomKey(roomName)]
	if r == nil {
		return "", false
	}
	for _, o := range r.sorted() {
		if o.nick == nick {
			return o.c.full.String(), true
		}
	}
	return "", false
}
