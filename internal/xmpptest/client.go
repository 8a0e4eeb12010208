package xmpptest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// DefaultTimeout bounds dialing, log-in, joins and IQs when Options.Timeout
// is zero.
const DefaultTimeout = 20 * time.Second

// maxBuffered bounds the stanzas kept for Expect; the oldest are dropped
// first, so a test that never calls Expect cannot grow memory without end.
const maxBuffered = 10000

// Errors returned by the client.
var (
	// ErrClosed is returned when the client was closed or the server ended
	// the stream.
	ErrClosed = errors.New("xmpptest: stream closed")
	// ErrTimeout is returned when an awaited stanza did not arrive in time.
	ErrTimeout = errors.New("xmpptest: timed out")
)

// Options configures Dial.
type Options struct {
	// Addr is the server's client port, host:port.
	Addr string
	// JID is the bare address to log in as, such as alice@localhost.
	JID string
	// Password is the account's password.
	Password string
	// Resource is the resource to ask for; the server's choice is accepted.
	// Empty lets the server pick one.
	Resource string
	// TLS is "starttls" (the default) or "direct" (TLS from the first byte,
	// XEP-0368).
	TLS string
	// RootCAs verifies the server's certificate; nil uses the system pool.
	RootCAs *x509.CertPool
	// ServerName is the name checked in the server's certificate; empty
	// means the JID's domain.
	ServerName string
	// Mechanisms restricts SASL to these mechanisms, in order of preference;
	// nil means SCRAM-SHA-256, SCRAM-SHA-1, PLAIN.
	Mechanisms []sasl.Mechanism
	// Timeout bounds dialing and log-in, and is the default wait of Join,
	// Leave and IQ; zero means DefaultTimeout.
	Timeout time.Duration
	// NoPresence skips the initial presence sent after log-in.
	NoPresence bool
}

// StanzaError is the error IQ and Join return when the server answered with a
// stanza of type error.
type StanzaError struct {
	// Condition is the defined condition, such as "item-not-found".
	Condition string
	// Stanza is the error stanza.
	Stanza Stanza
}

// Error returns the condition and the raw stanza.
func (e *StanzaError) Error() string {
	return fmt.Sprintf("xmpptest: error reply %q: %s", e.Condition, e.Stanza.Raw)
}

// Client is one logged-in XMPP user driven by a test. Its methods are safe
// for concurrent use, except that Expect must be called from the goroutine
// running the test it is given.
type Client struct {
	sess    *xmpp.Session
	conn    net.Conn
	jid     jid.JID
	timeout time.Duration
	logf    func(format string, args ...any)

	// writeMu orders raw writes; mellium's own output lock is taken too, so
	// raw writes never interleave with writes made through the session.
	writeMu sync.Mutex

	mu      sync.Mutex
	buf     []Stanza               // received, not yet taken by a waiter
	seq     uint64                 // sequence number of the last stanza
	changed chan struct{}          // closed and replaced on every change
	pending map[string]chan Stanza // iq id -> waiter for its response
	nicks   map[string]string      // room -> nick used in Join
	readErr error                  // why the read loop ended; nil while running
	done    chan struct{}          // closed when the read loop ends
	close   sync.Once
}

// Dial connects to opts.Addr, negotiates TLS, logs in with SASL, binds a
// resource, sends initial presence and starts reading. It fails the test if
// any step fails, and closes the client when the test ends.
func Dial(t testing.TB, opts Options) *Client {
	t.Helper()
	c, err := Connect(context.Background(), opts)
	if err != nil {
		t.Fatalf("xmpptest: log in as %s at %s (%s): %v", opts.JID, opts.Addr, tlsMode(opts), err)
	}
	c.logf = t.Logf
	t.Cleanup(func() { c.Close() })
	return c
}

func tlsMode(opts Options) string {
	if opts.TLS == "" {
		return "starttls"
	}
	return opts.TLS
}

// Connect is Dial without a test: it returns an error instead of failing.
// The caller must Close the client.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	origin, err := jid.Parse(opts.JID)
	if err != nil {
		return nil, fmt.Errorf("bad JID: %w", err)
	}
	origin = origin.Bare()
	if opts.Resource != "" {
		if origin, err = origin.WithResource(opts.Resource); err != nil {
			return nil, fmt.Errorf("bad resource: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	serverName := opts.ServerName
	if serverName == "" {
		serverName = origin.Domainpart()
	}
	tlsCfg := &tls.Config{
		ServerName: serverName,
		RootCAs:    opts.RootCAs,
		MinVersion: tls.VersionTLS12,
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	var conn net.Conn = raw
	var state xmpp.SessionState
	features := []xmpp.StreamFeature{}
	switch tlsMode(opts) {
	case "direct":
		direct := tlsCfg.Clone()
		direct.NextProtos = []string{"xmpp-client"}
		tc := tls.Client(raw, direct)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("direct TLS: %w", err)
		}
		conn = tc
		state = xmpp.Secure
	case "starttls":
		features = append(features, xmpp.StartTLS(tlsCfg))
	default:
		raw.Close()
		return nil, fmt.Errorf("unknown TLS mode %q (want starttls or direct)", opts.TLS)
	}
	mechs := opts.Mechanisms
	if len(mechs) == 0 {
		mechs = []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain}
	}
	features = append(features, xmpp.SASL("", opts.Password, mechs...), bindResource())

	// Bound the whole negotiation even if a step ignores the context.
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	sess, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, state,
		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: features}
		}))
	if err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})

	c := &Client{
		sess:    sess,
		conn:    sess.Conn(),
		jid:     sess.LocalAddr(),
		timeout: opts.Timeout,
		logf:    func(string, ...any) {},
		changed: make(chan struct{}),
		pending: map[string]chan Stanza{},
		nicks:   map[string]string{},
		done:    make(chan struct{}),
	}
	go c.readLoop()
	if !opts.NoPresence {
		if err := c.Send(ctx, "<presence/>"); err != nil {
			c.Close()
			return nil, fmt.Errorf("initial presence: %w", err)
		}
	}
	return c, nil
}

// JID returns the full address the server bound for this client.
func (c *Client) JID() jid.JID { return c.jid }

// Done is closed when the stream has ended (closed by either side).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the stream ended, or nil while it is up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// readLoop reads every top-level element, answers pings, hands IQ responses
// to their waiters and buffers everything else for Expect. It owns the
// session's input for the client's whole life; mellium's Serve is not used
// because it runs handlers one at a time while holding the stream, which
// would deadlock a handler waiting for a reply.
func (c *Client) readLoop() {
	r := c.sess.TokenReader()
	defer r.Close()
	var err error
	for {
		var tok xml.Token
		tok, err = r.Token()
		if err != nil {
			break
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue // whitespace keepalives between stanzas
		}
		var root *Node
		root, err = readElement(r, start)
		if err != nil {
			break
		}
		c.dispatch(root)
	}
	if errors.Is(err, io.EOF) {
		err = ErrClosed
	}
	c.mu.Lock()
	c.readErr = err
	c.signalLocked()
	c.mu.Unlock()
	close(c.done)
}

func (c *Client) dispatch(root *Node) {
	c.mu.Lock()
	c.seq++
	s := newStanza(root, c.seq)
	if s.Name == "iq" && (s.Type == "result" || s.Type == "error") {
		if ch, ok := c.pending[s.ID]; ok {
			delete(c.pending, s.ID)
			ch <- s // buffered with room for one
			c.mu.Unlock()
			return
		}
	}
	if s.Name == "iq" && s.Type == "get" && root.Child(nsPing, "ping") != nil {
		c.mu.Unlock()
		// Answer server and peer pings so the stream stays up; the reply
		// goes through the write lock, never the read side held here.
		reply := fmt.Sprintf("<iq type='result' id='%s' to='%s'/>", Escape(s.ID), Escape(s.From))
		if err := c.writeRaw(context.Background(), reply); err != nil {
			c.logf("xmpptest: %s: ping reply: %v", c.jid, err)
		}
		return
	}
	if len(c.buf) >= maxBuffered {
		c.buf = c.buf[1:]
	}
	c.buf = append(c.buf, s)
	c.signalLocked()
	c.mu.Unlock()
}

// signalLocked wakes every waiter; c.mu must be held.
func (c *Client) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Seq returns the sequence number of the last stanza received so far; pass
// it to Wait to consider only later stanzas.
func (c *Client) Seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// Wait returns, and removes from the buffer, the oldest received stanza with
// a sequence number above since that match accepts. It waits at most
// timeout, and returns ErrTimeout or the reason the stream ended otherwise.
func (c *Client) Wait(ctx context.Context, since uint64, timeout time.Duration, match func(Stanza) bool) (Stanza, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		for i, s := range c.buf {
			if s.Seq > since && match(s) {
				c.buf = append(c.buf[:i:i], c.buf[i+1:]...)
				c.mu.Unlock()
				return s, nil
			}
		}
		readErr := c.readErr
		changed := c.changed
		c.mu.Unlock()
		if readErr != nil {
			return Stanza{}, fmt.Errorf("%w: %v", ErrClosed, readErr)
		}
		select {
		case <-changed:
		case <-timer.C:
			return Stanza{}, fmt.Errorf("%w after %v", ErrTimeout, timeout)
		case <-ctx.Done():
			return Stanza{}, ctx.Err()
		}
	}
}

// Expect returns the oldest received stanza (already buffered or arriving
// within timeout) that match accepts, and removes it from the buffer. It fails
// the test, listing the last stanzas seen, when none arrives in time or the
// stream ends.
func (c *Client) Expect(t testing.TB, timeout time.Duration, match func(Stanza) bool) Stanza {
	t.Helper()
	s, err := c.Wait(context.Background(), 0, timeout, match)
	if err != nil {
		t.Fatalf("xmpptest: %s: no expected stanza: %v\nlast stanzas received:\n%s", c.jid, err, c.Recent(15))
	}
	return s
}

// Recent returns the raw XML of the last n stanzas still buffered, one per
// line, for failure messages.
func (c *Client) Recent(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	if len(b) > n {
		b = b[len(b)-n:]
	}
	var sb strings.Builder
	for _, s := range b {
		sb.WriteString("  ")
		sb.WriteString(s.Raw)
		sb.WriteByte('\n')
	}
	if sb.Len() == 0 {
		return "  (none)\n"
	}
	return sb.String()
}

// Drain removes every buffered stanza and returns them.
func (c *Client) Drain() []Stanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	c.buf = nil
	return b
}

// Send writes one element to the server. v is either a string of raw XML
// holding exactly one element (sent byte for byte, after checking it is well
// formed) or an xml.TokenReader whose first element is sent.
func (c *Client) Send(ctx context.Context, v any) error {
	switch x := v.(type) {
	case string:
		if err := checkOneElement(x); err != nil {
			return err
		}
		return c.writeRaw(ctx, x)
	case xml.TokenReader:
		c.writeMu.Lock()
		defer c.writeMu.Unlock()
		return c.sess.Send(ctx, x)
	default:
		return fmt.Errorf("xmpptest: Send takes a string or an xml.TokenReader, not %T", v)
	}
}

// writeRaw writes raw bytes under the session's output lock, bounded by the
// context's deadline or the client's timeout.
func (c *Client) writeRaw(ctx context.Context, raw string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	w := c.sess.TokenWriter() // takes mellium's output lock
	defer w.Close()
	if err := w.Flush(); err != nil {
		return err
	}
	deadline := time.Now().Add(c.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.conn.SetWriteDeadline(deadline)
	defer c.conn.SetWriteDeadline(time.Time{})
	_, err := io.WriteString(c.conn, raw)
	return err
}

// checkOneElement reports whether raw is a single well-formed element.
func checkOneElement(raw string) error {
	d := xml.NewDecoder(strings.NewReader(raw))
	depth, elems := 0, 0
	for i := 0; ; i++ {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("xmpptest: malformed XML to send: %w: %s", err, raw)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				elems++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if elems != 1 || depth != 0 {
		return fmt.Errorf("xmpptest: want exactly one element to send, got %d: %s", elems, raw)
	}
	return nil
}

// NewID returns a random stanza id.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SendMessage sends a message of type typ ("chat", "groupchat", "normal",
// "headline") with the given body to the address to.
func (c *Client) SendMessage(to, typ, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.writeRaw(ctx, fmt.Sprintf("<message to='%s' type='%s' id='%s'><body>%s</body></message>",
		Escape(to), Escape(typ), NewID(), Escape(body)))
}

// IQ sends an iq of type typ ("get" or "set") to the address to (empty: the
// account's server) with payloadXML as its child, and returns the response.
// A response of type error is returned together with a *StanzaError. Other
// stanzas keep flowing to Expect while IQ waits.
func (c *Client) IQ(ctx context.Context, to, typ, payloadXML string) (Stanza, error) {
	id := NewID()
	toAttr := ""
	if to != "" {
		toAttr = fmt.Sprintf(" to='%s'", Escape(to))
	}
	raw := fmt.Sprintf("<iq type='%s' id='%s'%s>%s</iq>", Escape(typ), id, toAttr, payloadXML)
	if err := checkOneElement(raw); err != nil {
		return Stanza{}, err
	}
	ch := make(chan Stanza, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	if err := c.writeRaw(ctx, raw); err != nil {
		return Stanza{}, err
	}
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case s := <-ch:
		if s.Type == "error" {
			return s, &StanzaError{Condition: s.ErrorCondition(), Stanza: s}
		}
		return s, nil
	case <-c.done:
		return Stanza{}, fmt.Errorf("%w while waiting for iq %s: %v", ErrClosed, id, c.Err())
	case <-timer.C:
		return Stanza{}, fmt.Errorf("%w: no response to iq %s to %s after %v", ErrTimeout, id, to, c.timeout)
	case <-ctx.Done():
		return Stanza{}, ctx.Err()
	}
}

// Join enters the MUC room (bare address) as nick, asking for no history,
// and waits for the room's self-presence (status 110). It returns a
// *StanzaError if the room answers with an error presence.
func (c *Client) Join(room, nick string) error {
	return c.JoinPresence(room, nick, "")
}

// JoinPresence is Join with extra XML (such as a <password/> element)
// inside the MUC <x/> element. Join asks for no history; extra with a
// <history/> element of its own asks for that instead.
func (c *Client) JoinPresence(room, nick, extra string) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	since := c.Seq()
	// No history unless extra asks for some.
	hist := "<history maxstanzas='0'/>"
	if strings.Contains(extra, "<history") {
		hist = ""
	}
	raw := fmt.Sprintf("<presence to='%s/%s'><x xmlns='%s'>%s%s</x></presence>",
		Escape(room), Escape(nick), nsMUC, hist, extra)
	if err := c.writeRaw(ctx, raw); err != nil {
		return err
	}
	s, err := c.Wait(ctx, since, c.timeout, func(s Stanza) bool {
		if s.Name != "presence" || bare(s.From) != room {
			return false
		}
		return s.Type == "error" || (s.Type == "" && s.HasStatus("110"))
	})
	if err != nil {
		return fmt.Errorf("xmpptest: join %s as %s: %w", room, nick, err)
	}
	if s.Type == "error" {
		return &StanzaError{Condition: s.ErrorCondition(), Stanza: s}
	}
	c.mu.Lock()
	c.nicks[room] = resourceOf(s.From)
	c.mu.Unlock()
	return nil
}

// Leave exits a room entered with Join and waits for the room to confirm.
func (c *Client) Leave(room string) error {
	c.mu.Lock()
	nick, ok := c.nicks[room]
	delete(c.nicks, room)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("xmpptest: leave %s: not joined", room)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	since := c.Seq()
	if err := c.writeRaw(ctx, fmt.Sprintf("<presence to='%s/%s' type='unavailable'/>", Escape(room), Escape(nick))); err != nil {
		return err
	}
	_, err := c.Wait(ctx, since, c.timeout, func(s Stanza) bool {
		return s.Name == "presence" && s.Type == "unavailable" && s.From == room+"/"+nick
	})
	if err != nil {
		return fmt.Errorf("xmpptest: leave %s: %w", room, err)
	}
	return nil
}

// Close ends the stream and the connection and waits (briefly) for the read
// loop to stop. It is safe to call more than once.
func (c *Client) Close() error {
	var err error
	c.close.Do(func() {
		c.writeMu.Lock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		err = c.sess.Close()
		c.writeMu.Unlock()
		// Give the server a moment to answer with its own stream end, then
		// cut the connection so the read loop stops whatever happens.
		select {
		case <-c.done:
		case <-time.After(2 * time.Second):
		}
		if cerr := c.conn.Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
		<-c.done
	})
	return err
}

func bare(addr string) string {
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		return addr[:i]
	}
	return addr
}

func resourceOf(addr string) string {
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// bindResource binds the resource part of the session's address (mellium's
// BindResource sends an empty resource) and accepts the server's choice.
func bindResource() xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			id := NewID()
			res := ""
			if r := s.LocalAddr().Resourcepart(); r != "" {
				res = "<resource>" + Escape(r) + "</resource>"
			}
			w := s.TokenWriter()
			err := w.Flush()
			if err == nil {
				_, err = fmt.Fprintf(s.Conn(), "<iq type='set' id='%s'><bind xmlns='%s'>%s</bind></iq>", id, nsBind, res)
			}
			w.Close()
			if err != nil {
				return 0, nil, err
			}
			r := s.TokenReader()
			defer r.Close()
			for {
				tok, err := r.Token()
				if err != nil {
					return 0, nil, err
				}
				start, ok := tok.(xml.StartElement)
				if !ok {
					continue
				}
				n, err := readElement(r, start)
				if err != nil {
					return 0, nil, err
				}
				if n.Name.Local != "iq" || n.Attr("id") != id {
					continue // nothing else is expected before bind; ignore it
				}
				if n.Attr("type") != "result" {
					return 0, nil, &StanzaError{Condition: newStanza(n, 0).ErrorCondition(), Stanza: newStanza(n, 0)}
				}
				j, err := jid.Parse(strings.TrimSpace(n.Find(nsBind, "jid").Text))
				if err != nil {
					return 0, nil, fmt.Errorf("bind: bad jid in result: %w", err)
				}
				s.UpdateAddr(j)
				return xmpp.Ready, nil, nil
			}
		},
	}
}

const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"
