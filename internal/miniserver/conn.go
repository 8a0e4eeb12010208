package miniserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"hash"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// mode says how a connection starts.
type mode int

const (
	modeStartTLS  mode = iota // plain TCP, STARTTLS required before SASL
	modeDirectTLS             // TLS from the first byte (XEP-0368)
	modeSecure                // already secure (BOSH)
)

const (
	scramIterations = 4096
	outQueue        = 4096 // stanzas queued for one client before it is dropped
)

// saltEntry caches the salted password of one account for one mechanism.
type saltEntry struct {
	salt, salted []byte
}

// authState is what one connection learned while negotiating.
type authState struct {
	resumed bool // the session was resumed (sm.go) rather than bound
	mu      sync.Mutex
	user    string // authenticated localpart
	tried   bool   // authentication was attempted
	client  *client
	tc      *trackedConn
	lc      *limitConn
}

func (a *authState) setUser(u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.user = u
}

func (a *authState) getUser() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.user
}

// guard runs serve on raw, tracked (Close and the fault API reach it),
// once the server hears (SetDeaf), with a panic of serve recovered and
// counted: hostile input must never take the server down. what names the
// handler in the log.
func (s *Server) guard(raw net.Conn, what string, serve func(tc *trackedConn)) {
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
			s.log.Error(what+" handler panicked", "err", r)
		}
	}()
	if !s.waitHearing(tc) {
		return
	}
	serve(tc)
}

// handle runs one accepted connection to its end.
func (s *Server) handle(raw net.Conn, m mode) {
	s.guard(raw, "connection", func(tc *trackedConn) { s.serveClient(tc, m) })
}

// serveClient runs a client connection guard accepted.
func (s *Server) serveClient(tc *trackedConn, m mode) {
	var base net.Conn = tc
	if s.cfg.Shape > 0 {
		base = &shapedConn{Conn: tc, rate: s.cfg.Shape}
	}
	lc := &limitConn{Conn: base, max: int64(s.maxStanza) + 64<<10}
	// Every stream is read through a spaceConn (space.go), inside TLS
	// where there is TLS.
	conn := newSpaceConn(lc)
	var state xmpp.SessionState
	switch m {
	case modeDirectTLS:
		conn = newSpaceConn(tls.Server(lc, s.tls.direct))
		state = xmpp.Secure // mellium cannot see the *tls.Conn under the spaceConn
	case modeSecure:
		state = xmpp.Secure
	}
	a := &authState{tc: tc, lc: lc}
	var features []xmpp.StreamFeature
	if m == modeStartTLS {
		features = append(features, startTLS(s.tls.starttls, conn))
	}
	features = append(features,
		xmpp.SASLServer(s.plainPermissions(a),
			s.scramMechanism(sasl.ScramSha256, sha256.New, a),
			s.scramMechanism(sasl.ScramSha1, sha1.New, a),
			sasl.Plain,
		),
		xmpp.BindCustom(func(_ jid.JID, res string) (jid.JID, error) {
			return s.bind(a, res)
		}),
	)
	if !s.cfg.NoSM {
		features = append(features, s.smFeature(a)) // stream management (sm.go)
	}
	ctx, cancel := context.WithTimeout(context.Background(), negotiateTimeout)
	go func() {
		// End the negotiation early when the connection is dropped.
		select {
		case <-tc.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	sess, err := xmpp.ReceiveSession(ctx, conn, state, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	}))
	ctxErr := ctx.Err()
	cancel()
	a.mu.Lock()
	c, tried := a.client, a.tried
	a.mu.Unlock()
	if err != nil || c == nil {
		if c != nil {
			s.mu.Lock()
			s.detachLocked(c)
			s.mu.Unlock()
			c.kill()
		}
	}
	if err != nil {
		if tried && c == nil {
			s.stats.authFailures.Add(1)
		}
		cond := negotiationError(err, tried && c == nil, lc.exceeded.Load(), ctxErr)
		s.log.Debug("negotiation failed", "remote", tc.RemoteAddr(), "err", err, "condition", cond)
		// A stream error needs the server's stream header out first.
		if cond != "" && sess != nil && sess.Out().ID != "" {
			s.stats.streamErr.Add(1)
			c := sess.Conn()
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, streamError(cond))
		}
		return
	}
	if c == nil {
		return
	}
	if a.resumed {
		// A resumed session (sm.go): the client object, its presence and
		// rooms carry on over this connection.
		s.mu.Lock()
		s.reattachLocked(c, tc, lc, sess)
		s.mu.Unlock()
	} else {
		// The session was registered at bind time so that stanzas for it
		// are queued from the moment the client learns its JID; writing
		// starts now that the bind result is out.
		c.sess = sess
		c.conn = sess.Conn()
	}
	go c.writeLoop()
	cut := c.readLoop()
	s.mu.Lock()
	hibernate := cut && s.hibernateLocked(c) // sm.go; it closes the connection
	if !hibernate {
		s.endLocked(c) // sm.go: unacknowledged messages are passed on
	}
	wdone := c.wdone
	s.mu.Unlock()
	if !hibernate {
		c.closeStream("")
	}
	select {
	case <-wdone:
	case <-time.After(writeTimeout + time.Second):
	}
}

// negotiationError picks the stream error condition that ends a failed
// negotiation (RFC 6120 §4.9.3), or "" when the connection is gone and
// nothing can be said: a stream error of mellium's own, the time limit,
// a stanza over the size limit, XML that is not well-formed, a failed
// authentication, and bad-format for anything else the client sent that
// the negotiation could not take (an unexpected element, say).
func negotiationError(err error, authFailed, tooLarge bool, ctxErr error) string {
	var se stream.Error
	var syn *xml.SyntaxError
	switch {
	case errors.As(err, &se):
		return se.Err
	case tooLarge:
		return "policy-violation"
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return "connection-timeout"
	case ctxErr != nil, errors.Is(err, io.EOF), isCutShort(err), isNetErr(err):
		return ""
	case authFailed:
		return "not-authorized"
	case errors.As(err, &syn):
		return "not-well-formed"
	}
	return "bad-format"
}

// streamError is a stream error followed by the end of the stream.
func streamError(cond string) string {
	if cond == "" {
		cond = "undefined-condition"
	}
	var b bytes.Buffer
	b.WriteString("<stream:error><")
	escape(&b, cond)
	b.WriteString(" xmlns='" + nsStreams + "'/></stream:error></stream:stream>")
	return b.String()
}

// plainPermissions checks PLAIN credentials against the accounts.
func (s *Server) plainPermissions(a *authState) func(*sasl.Negotiator) bool {
	return func(n *sasl.Negotiator) bool {
		a.mu.Lock()
		a.tried = true
		a.mu.Unlock()
		user, pass, authz := n.Credentials()
		local, ok := s.localpartOf(string(user))
		if !ok || !s.authzOK(local, string(authz)) {
			return false
		}
		s.mu.Lock()
		want, exists := s.accounts[local]
		s.mu.Unlock()
		if !exists || want != string(pass) {
			return false
		}
		a.setUser(local)
		return true
	}
}

// localpartOf normalizes a SASL user name ("alice" or "alice@domain").
func (s *Server) localpartOf(user string) (string, bool) {
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		if !strings.EqualFold(user[i+1:], s.domain) {
			return "", false
		}
		user = user[:i]
	}
	if user == "" {
		return "", false
	}
	j, err := jid.New(user, s.domain, "")
	if err != nil {
		return "", false
	}
	return j.Localpart(), true
}

// authzOK accepts an empty authorization identity or the user's own.
func (s *Server) authzOK(local, authz string) bool {
	if authz == "" {
		return true
	}
	l, ok := s.localpartOf(authz)
	return ok && l == local
}

// scramMechanism wraps a SCRAM mechanism so the server side gets salted
// credentials (mellium does not pass any) and so every failure is reported
// as <not-authorized/> rather than silently ending the connection.
func (s *Server) scramMechanism(m sasl.Mechanism, h func() hash.Hash, a *authState) sasl.Mechanism {
	base := m
	fetch := func(user, authz []byte, _ string) ([]byte, []byte, int64, error) {
		a.mu.Lock()
		a.tried = true
		a.mu.Unlock()
		local, ok := s.localpartOf(string(user))
		if !ok || !s.authzOK(local, string(authz)) {
			return nil, nil, 0, sasl.ErrAuthn
		}
		salt, salted, ok := s.saltedPassword(local, base.Name, h)
		if !ok {
			return nil, nil, 0, sasl.ErrAuthn
		}
		a.setUser(local)
		return salt, salted, scramIterations, nil
	}
	m.Next = func(n *sasl.Negotiator, challenge []byte, data any) (more bool, resp []byte, cache any, err error) {
		defer func() {
			if r := recover(); r != nil {
				more, resp, cache, err = false, nil, nil, sasl.ErrAuthn
			}
		}()
		sasl.SaltedCredentials(fetch)(n)
		more, resp, cache, err = base.Next(n, challenge, data)
		if err != nil {
			// The user name was only a claim until the proof checked out.
			a.setUser("")
			return false, nil, nil, sasl.ErrAuthn
		}
		return more, resp, cache, nil
	}
	return m
}

// saltedPassword returns (and caches) the salted password of an account.
func (s *Server) saltedPassword(local, mech string, h func() hash.Hash) (salt, salted []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pass, exists := s.accounts[local]
	if !exists {
		return nil, nil, false
	}
	key := local + "\x00" + mech
	if e, ok := s.salts[key]; ok {
		return e.salt, e.salted, true
	}
	salt = make([]byte, 16)
	_, _ = rand.Read(salt)
	salted = sasl.SCRAMSaltPassword(h, []byte(pass), salt, scramIterations)
	s.salts[key] = saltEntry{salt: salt, salted: salted}
	return salt, salted, true
}

// bind picks the session's full JID: the requested resource when valid,
// otherwise a generated one.
func (s *Server) bind(a *authState, res string) (jid.JID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.user == "" {
		return jid.JID{}, errors.New("miniserver: bind before authentication")
	}
	var j jid.JID
	var err error
	if res != "" {
		j, err = jid.New(a.user, s.domain, res)
	}
	if res == "" || err != nil {
		j, err = jid.New(a.user, s.domain, "r"+randomID())
		if err != nil {
			return jid.JID{}, err
		}
	}
	c := &client{
		srv:   s,
		tc:    a.tc,
		lc:    a.lc,
		full:  j,
		bare:  j.Bare().String(),
		out:   make(chan []byte, outQueue),
		quit:  make(chan struct{}),
		wdone: make(chan struct{}),
	}
	a.client = c
	s.register(c)
	return j, nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// client is one bound session.
type client struct {
	srv  *Server
	sess *xmpp.Session
	conn net.Conn     // the session's connection (TLS when negotiated)
	tc   *trackedConn // the raw accepted connection
	lc   *limitConn
	full jid.JID
	bare string

	out       chan []byte
	quit      chan struct{}
	wdone     chan struct{}
	closeOnce sync.Once
	final     []byte

	// Guarded by srv.mu.
	gone      bool
	available bool
	prio      int
	pres      *el // last broadcast available presence
	sm        smSession
	// Resumption (sm.go): a hibernating session has no connection; it
	// keeps what is sent to it in sm.queue until resumed or expired.
	hibernating bool
	hibGen      int // bumps on every hibernation, for the expiry timer

	// External components (component.go): comp is set on a component's
	// connection, read is its stream (no mellium session), and owner is
	// set on each address the component speaks from: what is sent to
	// one goes out on the owner's connection.
	comp  *componentConn
	read  xml.TokenReader
	owner *client
}

// send queues b for the client; a client that cannot keep up is dropped.
// A hibernating session has no connection: its stanzas wait in the stream
// management queue (sm.go) and anything else is moot.
func (c *client) send(b []byte) {
	if c.owner != nil {
		c.owner.send(b)
		return
	}
	if c.hibernating {
		return
	}
	select {
	case c.out <- b:
	default:
		c.srv.log.Warn("client too slow, dropping it", "jid", c.full.String())
		c.kill()
	}
}

// closeStream ends the stream after the queued stanzas, with a stream error
// when cond is set.
func (c *client) closeStream(cond string) {
	if c.owner != nil {
		c.owner.closeStream(cond)
		return
	}
	c.closeOnce.Do(func() {
		if cond != "" {
			c.srv.stats.streamErr.Add(1)
			c.final = []byte(streamError(cond))
		} else {
			c.final = []byte("</stream:stream>")
		}
		close(c.quit)
	})
}

// kill closes the connection at once.
func (c *client) kill() {
	if c.owner != nil {
		c.owner.kill()
		return
	}
	c.closeOnce.Do(func() { close(c.quit) })
	_ = c.tc.Close()
}

func (c *client) write(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.conn.Write(b)
	return err
}

func (c *client) writeLoop() {
	defer close(c.wdone)
	defer func() { _ = c.tc.Close() }()
	for {
		select {
		case b := <-c.out:
			if err := c.write(b); err != nil {
				return
			}
			c.srv.stats.routed.Add(1)
		case <-c.quit:
			// Flush what was queued before the end, boundedly.
			for range outQueue {
				select {
				case b := <-c.out:
					if err := c.write(b); err != nil {
						return
					}
				default:
					if c.final != nil {
						_ = c.write(c.final)
					}
					return
				}
			}
			return
		}
	}
}

// readLoop reads stanzas until the stream ends. It reports true when the
// connection was cut (a network error or the bytes ending inside the
// stream) rather than closed: such a session may be resumed.
func (c *client) readLoop() (cut bool) {
	s := c.srv
	var r xml.TokenReader = c.read
	if r == nil {
		rc := c.sess.TokenReader()
		defer rc.Close()
		r = rc
	}
	for {
		c.lc.mark()
		e, err := readElement(r, s.maxStanza)
		if err != nil {
			select {
			case <-c.quit:
				return false // the server ended the session
			default:
			}
			var se stream.Error
			switch {
			case errors.Is(err, io.EOF):
				c.closeStream("")
			case c.lc.exceeded.Load() || errors.Is(err, errTooLarge) || errors.Is(err, errTooDeep):
				s.log.Info("stanza over the limit, closing", "jid", c.full.String())
				c.closeStream("policy-violation")
			case errors.As(err, &se):
				c.closeStream("")
			case isNetErr(err) || isCutShort(err):
				c.kill()
				return true
			default:
				s.log.Debug("bad xml from client", "jid", c.full.String(), "err", err)
				c.closeStream("not-well-formed")
			}
			return false
		}
		if e.Name.Space == nsSM { // stream management (sm.go)
			if !s.smElement(c, e) {
				return false
			}
			continue
		}
		s.stats.stanzasIn.Add(1)
		if !s.process(c, e) {
			return false
		}
	}
}

// isCutShort reports whether err is the XML decoder's complaint about a
// stream whose bytes ended in the middle: a connection closed under it.
func isCutShort(err error) bool {
	var se *xml.SyntaxError
	return errors.As(err, &se) && se.Msg == "unexpected EOF"
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// register publishes a bound session; an existing session with the same full
// JID is replaced (its stream ends with <conflict/>).
func (s *Server) register(c *client) {
	s.stats.logins.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.clients[c.full.String()]; old != nil {
		s.endLocked(old)
		old.closeStream("conflict")
	}
	s.clients[c.full.String()] = c
	s.log.Debug("session bound", "jid", c.full.String())
}
