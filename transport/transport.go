package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"crier/transport/bosh"
)

// Transport and TLS modes accepted in Options.
const (
	TransportTCP  = "tcp"
	TransportBOSH = "bosh"
	// TransportWebSocket is XMPP over WebSocket (RFC 7395).
	TransportWebSocket = "websocket"

	TLSStartTLS = "starttls"
	TLSDirect   = "direct"
	TLSNone     = "none"
)

const (
	defaultTimeout = 20 * time.Second
	// closeGrace bounds how long Close waits for the server to end its
	// stream before dropping the socket.
	closeGrace = 2 * time.Second
)

// Options says where to connect and how to log in. The zero values of the
// optional fields give the defaults documented on each.
type Options struct {
	// JID is the account's bare JID; a resourcepart here is ignored.
	JID jid.JID
	// Password is the account's password. It is never logged.
	Password string
	// Resource is the resource to bind; it really is requested from the
	// server. Empty lets the server choose one.
	Resource string
	// Transport is "tcp" (the default), "bosh", "websocket" or
	// "component" (XEP-0114: JID is the component's domain, Password the
	// shared secret, Address the server's component port, TLS "direct" or
	// "none").
	Transport string
	// Address is the TCP "host:port" to dial. Empty means an SRV lookup of
	// the JID's domain (falling back to domain:5222, and for TLS "direct"
	// to the _xmpps-client records and domain:5223).
	Address string
	// TLS is "starttls" (the default; the server must offer it), "direct"
	// (XEP-0368, TLS from the first byte) or "none" (accepted only when
	// Address is on the loopback interface).
	TLS string
	// BOSHURL is the BOSH endpoint when Transport is "bosh". http:// is
	// accepted only towards a loopback host. Empty means discovery: the
	// domain's host-meta documents (XEP-0156) name it.
	BOSHURL string
	// WSURL is the WebSocket endpoint when Transport is "websocket"
	// (wss://host/xmpp-websocket). ws:// is accepted only towards a
	// loopback host. Empty means discovery, as for BOSHURL.
	WSURL string
	// WSOrigin, when set, is sent as the Origin header of the WebSocket
	// handshake (for servers that check it); empty sends none.
	WSOrigin string
	// TLSConfig holds the caller's TLS settings (extra roots, client
	// certificates, InsecureSkipVerify). It is cloned; ServerName defaults
	// to the JID's domain for TCP (to the URL's host for BOSH and
	// WebSocket) and
	// MinVersion to TLS 1.2. Nil means the system roots.
	TLSConfig *tls.Config
	// Timeout bounds the whole of Connect: resolution, dialing, TLS, SASL
	// and binding. Zero means 20 seconds.
	Timeout time.Duration
	// Resolver answers the SRV lookup and every host name lookup (TCP
	// address, SRV targets, the BOSH URL's host); nil is the system's
	// (net.DefaultResolver).
	Resolver *net.Resolver
	// DisableSM keeps stream management (XEP-0198) off even when the
	// server offers it; Conn.Barrier then returns ErrNoSM.
	DisableSM bool
	// Resume, if set, is a session to resume (from Conn.ResumeState of the
	// connection that was lost) instead of binding a new resource. When the
	// server cannot resume it, or has not offered stream management, a new
	// resource is bound as usual; Conn.Resumed tells which happened.
	Resume *Resume
	// Tap, if set, observes every element of the encrypted stream.
	Tap Tap
	// OnTapStop, if set, is called once per direction when the tap can no
	// longer follow the stream, with the limit that was passed
	// (xmlsplit.Limit: "size", "depth", "attributes", "pending",
	// "syntax"). An incoming stream that cannot be followed ends the
	// connection. It runs on the reading or writing goroutine and must
	// not block.
	OnTapStop func(dir Direction, limit string)
	// Logger receives debug and warning records; nil discards them.
	Logger *slog.Logger
}

// String describes o without its password.
func (o Options) String() string {
	return fmt.Sprintf("{JID:%s Resource:%s Transport:%s Address:%s TLS:%s BOSHURL:%s WSURL:%s Timeout:%s Password:[redacted]}",
		o.JID, o.Resource, o.Transport, o.Address, o.TLS, o.BOSHURL, o.WSURL, o.Timeout)
}

// LogValue describes o to slog without its password.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("jid", o.JID.String()),
		slog.String("resource", o.Resource),
		slog.String("transport", o.Transport),
		slog.String("address", o.Address),
		slog.String("tls", o.TLS),
		slog.String("bosh_url", o.BOSHURL),
		slog.String("websocket_url", o.WSURL),
	)
}

// Conn is an established, authenticated and bound XMPP session.
type Conn struct {
	// Session is the mellium session, ready for Serve and Send.
	Session *xmpp.Session
	// JID is the full JID the server bound.
	JID jid.JID
	// Transport is "tcp", "bosh" or "websocket".
	Transport string
	// Mechanism is the SASL mechanism that authenticated the session.
	Mechanism string
	// Secure is true when the bytes on the wire are encrypted.
	Secure bool
	// Server is the address of the peer (host:port, or the BOSH or
	// WebSocket URL).
	Server string

	tc        *tapConn
	closeOnce sync.Once
	closeErr  error
}

// Inject writes raw, which must be exactly one complete element (such as
// <r xmlns='urn:xmpp:sm:3'/>), into the outgoing stream. It goes out at
// once if the stream is between two elements, or else right after the
// element being written; it never splits one. The Tap sees it as an Out
// element. Inject may block while the connection is writing; it is safe
// for concurrent use and returns ErrClosed after Close.
func (c *Conn) Inject(raw []byte) error {
	return c.tc.inject(raw)
}

// Close ends the stream politely (</stream:stream>), waits up to two
// seconds for the server to end its side, then closes the socket. If Serve
// is blocked reading, it sees the server's end and returns; if nothing is
// reading, Close reads and discards until the end itself. Close is safe to
// call more than once; later calls return the first result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.tc.SetWriteDeadline(time.Now().Add(closeGrace))
		// Tell the server what was received before the stream ends, or
		// it passes on what it believes unacknowledged (to another
		// resource, or offline storage) and this account sees it twice.
		c.tc.sm.finalAck(c.tc)
		err := c.Session.Close()
		if err == nil {
			c.tc.awaitEnd(closeGrace)
		}
		if cerr := c.tc.Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
		if err != nil {
			c.closeErr = fmt.Errorf("transport: close: %w", err)
		}
	})
	return c.closeErr
}

// Abort closes the connection at once without ending the stream, as a
// network failure would: a server that allows resumption keeps the session
// for a later Connect with Options.Resume. Close and Abort share their
// once: whichever comes first decides.
func (c *Conn) Abort() {
	c.closeOnce.Do(func() { _ = c.tc.Close() })
}

// Connect dials the server, secures the connection, authenticates with
// SASL and binds the resource, all within o.Timeout. Errors wrap one of the
// package's sentinel errors (see Reason).
func Connect(ctx context.Context, o Options) (*Conn, error) {
	o, err := o.normalize()
	if err != nil {
		return nil, err
	}
	log := o.Logger
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	if o.TLSConfig.InsecureSkipVerify {
		log.Warn("TLS certificate verification is DISABLED; the connection can be intercepted", "domain", o.JID.Domainpart())
	}

	// No URL for an HTTP-borne transport: ask the domain (XEP-0156).
	for _, d := range []struct {
		transport string
		url       *string
		rel       string
	}{{TransportWebSocket, &o.WSURL, relWebSocket}, {TransportBOSH, &o.BOSHURL, relBOSH}} {
		if o.Transport != d.transport || *d.url != "" {
			continue
		}
		found, err := discoverEndpoint(ctx, o, d.rel)
		if err != nil {
			return nil, err
		}
		log.Info("endpoint discovered (XEP-0156)", "transport", o.Transport, "domain", o.JID.Domainpart(), "url", found)
		*d.url = found
	}

	for redirects := 0; ; redirects++ {
		var (
			raw    net.Conn
			secure bool
			server string
		)
		switch o.Transport {
		case TransportBOSH:
			raw, secure, err = dialBOSH(ctx, o)
			server = o.BOSHURL
		case TransportWebSocket:
			raw, secure, err = dialWebSocket(ctx, o)
			server = o.WSURL
		case TransportComponent:
			raw, secure, err = dialComponent(ctx, o)
			server = o.Address
		default:
			raw, secure, err = dialTCP(ctx, o)
			if raw != nil {
				server = raw.RemoteAddr().String()
			}
		}
		if err != nil {
			return nil, err
		}
		log.Debug("connected", "transport", o.Transport, "server", server, "secure", secure)

		var c *Conn
		if o.Transport == TransportComponent {
			c, err = negotiateComponent(ctx, o, raw, secure)
		} else {
			c, err = negotiate(ctx, o, raw, secure)
		}
		if err != nil {
			next := seeOtherURI(raw)
			if next == "" {
				return nil, err
			}
			if redirects >= maxRedirects {
				return nil, fmt.Errorf("%w: %s: more than %d see-other-uri redirects", ErrConnect, server, maxRedirects)
			}
			if err := checkRedirect(o.WSURL, next); err != nil {
				return nil, err
			}
			log.Info("the server sends the WebSocket connection elsewhere (see-other-uri)", "from", o.WSURL, "to", next)
			o.WSURL = next
			continue
		}
		c.Server = server
		// Stream management (sm.go): request it now that the resource is
		// bound, or start answering the server's requests on a resumed
		// session; the answer is read by the caller's Serve.
		if !o.DisableSM || c.tc.sm.isResumed() {
			c.tc.sm.enable(c.tc)
		}
		log.Debug("session ready", "jid", c.JID.String(), "mechanism", c.Mechanism)
		return c, nil
	}
}

// negotiate runs SASL and bind over the secured connection raw.
func negotiate(ctx context.Context, o Options, raw net.Conn, secure bool) (*Conn, error) {
	tc := newTapConn(raw, o.Tap, o.Logger)
	tc.onStop = o.OnTapStop
	allowPlain := secure || o.TLS == TLSNone
	features := []xmpp.StreamFeature{
		xmpp.SASL("", o.Password, mechanisms(allowPlain, tc.obs)...),
		bindFeature(o.Resource, resumeFor(o), tc, o.Logger),
	}
	neg := xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Lang: "en", Features: features}
	})
	// mellium turns the context's end into a past deadline on the
	// connection; closing it as well guarantees that Connect returns in
	// time even over a connection whose deadlines do not interrupt
	// pending reads.
	stop := context.AfterFunc(ctx, func() { tc.Close() })
	// The connection is marked Secure even for tls "none" (loopback only,
	// checked by the dialer): mellium refuses SASL otherwise, and PLAIN is
	// already kept out by mechanisms.
	sess, err := xmpp.NewSession(ctx, o.JID.Domain(), o.JID, tc, xmpp.Secure, neg)
	if !stop() && err == nil {
		err = ctx.Err() // the connection was closed under the session
	}
	if err != nil {
		tc.Close()
		return nil, classify(ctx, phaseNegotiate, err, tc.obs)
	}
	return &Conn{
		Session:   sess,
		JID:       sess.LocalAddr(),
		Transport: o.Transport,
		Mechanism: tc.obs.mechanism(),
		Secure:    secure,
		tc:        tc,
	}, nil
}

// resumeFor returns the session Connect should try to resume, if any.
func resumeFor(o Options) *Resume {
	r := o.Resume
	switch {
	case r == nil || o.DisableSM:
		return nil
	case r.ID == "" || !r.JID.Bare().Equal(o.JID.Bare()):
		o.Logger.Warn("not resuming: the saved session is not one of this account")
		return nil
	case r.Expired(time.Now()):
		o.Logger.Info("not resuming: the server's resumption window is over", "lost", r.Lost, "max", r.Max)
		return nil
	}
	return r
}

// normalize checks o and fills in the defaults.
func (o Options) normalize() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.JID.Domainpart() == "" {
		return o, fmt.Errorf("%w: no JID", ErrConfig)
	}
	if o.Transport == TransportComponent {
		if o.JID.Localpart() != "" || o.JID.Resourcepart() != "" {
			return o, fmt.Errorf("%w: a component's JID is its domain, not %s", ErrConfig, o.JID)
		}
		if o.Password == "" {
			return o, fmt.Errorf("%w: a component connection needs the shared secret", ErrConfig)
		}
		tlsMode, err := componentTLS(o.TLS)
		if err != nil {
			return o, err
		}
		o.TLS = tlsMode
	} else if o.JID.Localpart() == "" {
		return o, fmt.Errorf("%w: JID %s has no localpart", ErrConfig, o.JID)
	}
	o.JID = o.JID.Bare()
	if o.Resource != "" {
		if _, err := o.JID.WithResource(o.Resource); err != nil {
			return o, fmt.Errorf("%w: resource %q: %w", ErrConfig, o.Resource, err)
		}
	}
	switch o.Transport {
	case "":
		o.Transport = TransportTCP
	case TransportTCP, TransportBOSH, TransportWebSocket, TransportComponent:
	default:
		return o, fmt.Errorf("%w: transport %q (want tcp, bosh, websocket or component)", ErrConfig, o.Transport)
	}
	switch o.TLS {
	case "":
		o.TLS = TLSStartTLS
	case TLSStartTLS, TLSDirect, TLSNone:
	default:
		return o, fmt.Errorf("%w: tls %q (want starttls, direct or none)", ErrConfig, o.TLS)
	}
	if o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{}
	} else {
		o.TLSConfig = o.TLSConfig.Clone()
	}
	if o.TLSConfig.MinVersion == 0 {
		o.TLSConfig.MinVersion = tls.VersionTLS12
	}
	if o.TLSConfig.ServerName == "" && o.Transport == TransportTCP {
		o.TLSConfig.ServerName = o.JID.Domainpart()
	}
	return o, nil
}

// dialBOSH opens a BOSH session through the bosh package.
func dialBOSH(ctx context.Context, o Options) (net.Conn, bool, error) {
	u, err := url.Parse(o.BOSHURL)
	if err != nil || u.Host == "" {
		return nil, false, fmt.Errorf("%w: BOSH URL %q is not an absolute URL", ErrConfig, o.BOSHURL)
	}
	var secure bool
	switch u.Scheme {
	case "https":
		secure = true
	case "http":
		if err := requireLoopback(ctx, o.Resolver, u.Hostname()); err != nil {
			return nil, false, err
		}
	default:
		return nil, false, fmt.Errorf("%w: BOSH URL scheme %q (want https)", ErrConfig, u.Scheme)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	tr.TLSClientConfig = o.TLSConfig
	if o.Resolver != nil {
		d := &net.Dialer{Resolver: o.Resolver, Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		tr.DialContext = d.DialContext
	}
	c, err := bosh.Dial(ctx, bosh.Config{
		URL:    o.BOSHURL,
		Domain: o.JID.Domainpart(),
		Client: &http.Client{Transport: tr},
		Logger: o.Logger.With("component", "bosh"),
	})
	if err != nil {
		return nil, false, classify(ctx, phaseDial, err, nil)
	}
	return c, secure, nil
}
