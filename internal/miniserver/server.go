package miniserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"crier/internal/miniserver/boshcm"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxStanza = 256 << 10
	DefaultMaxConns  = 1000
	// DefaultResumeTimeout is how long a lost session waits to be resumed
	// (Config.ResumeTimeout).
	DefaultResumeTimeout = time.Minute
)

// Timeouts that bound every connection.
const (
	negotiateTimeout = 30 * time.Second
	writeTimeout     = 10 * time.Second
	closeWait        = 5 * time.Second
	restartPause     = 100 * time.Millisecond
)

// Errors returned by the Server.
var (
	ErrClosed     = errors.New("miniserver: server closed")
	ErrNoRoom     = errors.New("miniserver: no such room")
	ErrNoOccupant = errors.New("miniserver: no such occupant")
	ErrBadStatus  = errors.New("miniserver: unsupported status code")
	ErrBadConfig  = errors.New("miniserver: invalid config")
	// ErrNoSM means the session did not enable stream management (sm.go).
	ErrNoSM = errors.New("miniserver: stream management not enabled")
)

// Config describes the server to start.
type Config struct {
	// Domain is the served XMPP domain, "localhost" when empty.
	Domain string
	// MUCDomain is the multi-user chat service, "conference." + Domain when empty.
	MUCDomain string
	// Addr is the c2s listener (STARTTLS required before SASL), such as
	// "127.0.0.1:0"; empty means none.
	Addr string
	// TLSAddr is the direct TLS c2s listener (XEP-0368); empty means none.
	TLSAddr string
	// HTTPAddr serves /http-bind (BOSH), /xmpp-websocket (WebSocket, RFC
	// 7395) and, when Web is set, the files of Web at /; empty means none.
	HTTPAddr string
	// ComponentAddr is the listener of external components (XEP-0114),
	// such as "127.0.0.1:0"; empty means none. Components lists the
	// domains that may connect there, each with its shared secret
	// (AddComponent adds more).
	ComponentAddr string
	Components    map[string]string
	// ComponentSM offers stream management (XEP-0198, without
	// resumption) to components, in stream features before the
	// handshake; XEP-0114 servers do not.
	ComponentSM bool
	// Web holds static files served at / on HTTPAddr (optional).
	Web fs.FS
	// Accounts maps a bare JID ("alice@localhost") or a localpart to its
	// password.
	Accounts map[string]string
	// MaxStanza is the largest stanza accepted in bytes (DefaultMaxStanza
	// when zero); a larger one ends the stream with <policy-violation/>.
	MaxStanza int
	// MaxConns bounds simultaneous connections (DefaultMaxConns when zero).
	MaxConns int
	// Shape, when positive, reads at most this many bytes per second from
	// each client connection, as ejabberd's default c2s shaper does: a
	// client that sends faster is pushed back through TCP.
	Shape int
	// NoSM turns stream management (XEP-0198) off: it is not advertised
	// and <enable/> is answered with <failed/>.
	NoSM bool
	// NoResume keeps stream management without resumption: <enabled/>
	// never says resume='true' and <resume/> fails.
	NoResume bool
	// ResumeTimeout is how long a stream-managed session that asked for
	// resumption survives a lost connection (DefaultResumeTimeout when
	// zero): stanzas for it are kept, its presence and rooms stay, until a
	// <resume/> takes it up again or the time is over.
	ResumeTimeout time.Duration
	// Certificate, when set, is the certificate (with its key) the
	// server presents; when nil, Start makes a self-signed one for Domain
	// (NewCertificate makes one to keep across restarts).
	Certificate *tls.Certificate
	// Logger receives the server's logs; slog.Default() when nil.
	Logger *slog.Logger

	// Limits of the chat service (limits.go), all off when zero.
	// JoinDelay answers each room join after this long.
	JoinDelay time.Duration
	// MaxPendingJoins refuses a join while this many wait for their
	// answer (with JoinDelay), with <error type='wait'><resource-constraint/>.
	MaxPendingJoins int
	// MaxRoomsPerUser refuses a join of an account already in this many
	// rooms with <error type='wait'><resource-constraint/>, as ejabberd's
	// max_user_conferences does.
	MaxRoomsPerUser int
	// RoomMessageInterval bounces a room message sent sooner than this
	// after the same occupant's previous one with <error type='wait'>
	// <policy-violation/>, as Prosody's mod_muc_limits does.
	RoomMessageInterval time.Duration
}

// Stats are counters describing what the server did since Start.
type Stats struct {
	Accepted      int64 // connections accepted on any listener or through ServeConn
	Refused       int64 // connections closed at once (MaxConns, restart, shutdown)
	Active        int   // connections open now
	Sessions      int   // bound sessions now
	Logins        int64 // successful authentications
	AuthFailures  int64 // failed negotiations after authentication started
	StanzasIn     int64 // stanzas read from clients
	StanzasRouted int64 // stanzas written to clients
	Rejected      int64 // stanzas answered with a stanza error
	StreamErrors  int64 // streams ended with a stream error
	Dropped       int64 // stanzas discarded while deaf
	Resumed       int64 // sessions resumed (XEP-0198)
	Hibernating   int   // sessions waiting now to be resumed
	Rescued       int64 // unacknowledged messages of ended sessions passed on (sm.go)
}

type counters struct {
	accepted, refused, logins, authFailures       atomic.Int64
	stanzasIn, routed, rejected, streamErr, drops atomic.Int64
	panics, resumed, rescued                      atomic.Int64
}

// Server is a running embedded XMPP server. Its methods are safe for
// concurrent use.
type Server struct {
	// wsRedirect: see-other-uri answers still to give (RedirectWebSocket).
	wsRedirect struct {
		sync.Mutex
		uri string
		n   int
	}
	cfg       Config
	log       *slog.Logger
	domain    string
	mucDomain string
	maxStanza int
	maxConns  int
	tls       tlsMaterial
	boshH     *boshcm.Handler
	stats     counters

	ctxStop   context.CancelFunc
	closed    chan struct{}
	closeOnce sync.Once

	// lnMu serializes Restart and Close around the listeners.
	lnMu      sync.Mutex
	listeners []net.Listener
	httpSrv   *http.Server
	acceptWG  sync.WaitGroup
	addr      string
	tlsAddr   string
	httpAddr  string
	compAddr  string

	// mu guards all XMPP state below. Stanza handling runs entirely under it;
	// delivery only queues bytes, so nothing blocks while it is held.
	mu        sync.Mutex
	conns     map[*trackedConn]struct{}
	accounts  map[string]string // localpart -> password
	salts     map[string]saltEntry
	clients   map[string]*client // full JID -> session
	rosters   map[string]map[string]*rosterItem
	pendingIn map[string]map[string]bool // contact bare -> requesting bares
	offline   map[string][]*el
	rooms     map[string]*room // room localpart -> room
	// External components (component.go): allowed domains with their
	// secrets, and the connected ones.
	compSecrets map[string]string
	components  map[string]*client
	deaf        bool
	undeaf      chan struct{}
	refusing    bool
	nextID      int64
	lim         limitState // limits.go
}

// Start validates cfg, binds every configured listener and serves until ctx
// is cancelled or Close is called. The listeners accept connections when it
// returns.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	d, err := jid.Parse(cfg.Domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return nil, fmt.Errorf("%w: domain %q", ErrBadConfig, cfg.Domain)
	}
	if cfg.MUCDomain == "" {
		cfg.MUCDomain = "conference." + d.Domainpart()
	}
	md, err := jid.Parse(cfg.MUCDomain)
	if err != nil || md.Localpart() != "" || md.Resourcepart() != "" || md.Domainpart() == d.Domainpart() {
		return nil, fmt.Errorf("%w: muc domain %q", ErrBadConfig, cfg.MUCDomain)
	}
	if cfg.MaxStanza <= 0 {
		cfg.MaxStanza = DefaultMaxStanza
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tm, err := newTLSMaterial(d.Domainpart(), cfg.Certificate)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "miniserver"),
		domain:      d.Domainpart(),
		mucDomain:   md.Domainpart(),
		maxStanza:   cfg.MaxStanza,
		maxConns:    cfg.MaxConns,
		tls:         tm,
		closed:      make(chan struct{}),
		conns:       make(map[*trackedConn]struct{}),
		accounts:    make(map[string]string),
		salts:       make(map[string]saltEntry),
		clients:     make(map[string]*client),
		rosters:     make(map[string]map[string]*rosterItem),
		pendingIn:   make(map[string]map[string]bool),
		offline:     make(map[string][]*el),
		rooms:       make(map[string]*room),
		compSecrets: make(map[string]string),
		components:  make(map[string]*client),
	}
	for k, v := range cfg.Accounts {
		s.AddAccount(k, v)
	}
	for k, v := range cfg.Components {
		if err := s.AddComponent(k, v); err != nil {
			return nil, err
		}
	}
	s.boshH = boshcm.New(boshcm.Config{
		Domain: s.domain,
		Serve:  func(c net.Conn) { s.ServeConn(c, true) },
		Logger: s.log.With("component", "boshcm"),
	})
	s.addr, s.tlsAddr, s.httpAddr = cfg.Addr, cfg.TLSAddr, cfg.HTTPAddr
	s.compAddr = cfg.ComponentAddr
	if err := s.listen(ctx); err != nil {
		s.closeListeners()
		return nil, err
	}
	stopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.ctxStop = stop
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-stopCtx.Done():
		}
	}()
	s.log.Info("xmpp server started", "domain", s.domain, "c2s", s.addr, "tls", s.tlsAddr, "http", s.httpAddr, "component", s.compAddr)
	return s, nil
}

// listen binds the configured addresses (the actual ones after the first
// call, so Restart reuses the same ports) and starts the accept loops.
// Callers hold lnMu or have not published s yet.
func (s *Server) listen(ctx context.Context) error {
	var lc net.ListenConfig
	bind := func(addr string) (net.Listener, error) {
		// A port freed by Restart may linger briefly; retry a bounded number
		// of times.
		var err error
		for range 50 {
			var ln net.Listener
			ln, err = lc.Listen(ctx, "tcp", addr)
			if err == nil {
				return ln, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		return nil, err
	}
	if s.addr != "" {
		ln, err := bind(s.addr)
		if err != nil {
			return fmt.Errorf("miniserver: listen c2s: %w", err)
		}
		s.addr = ln.Addr().String()
		s.serveListener(ln, modeStartTLS)
	}
	if s.tlsAddr != "" {
		ln, err := bind(s.tlsAddr)
		if err != nil {
			return fmt.Errorf("miniserver: listen tls: %w", err)
		}
		s.tlsAddr = ln.Addr().String()
		s.serveListener(ln, modeDirectTLS)
	}
	if s.compAddr != "" {
		ln, err := bind(s.compAddr)
		if err != nil {
			return fmt.Errorf("miniserver: listen component: %w", err)
		}
		s.compAddr = ln.Addr().String()
		s.serveComponents(ctx, ln) // component.go
	}
	if s.httpAddr != "" {
		ln, err := bind(s.httpAddr)
		if err != nil {
			return fmt.Errorf("miniserver: listen http: %w", err)
		}
		s.httpAddr = ln.Addr().String()
		s.listeners = append(s.listeners, ln)
		mux := http.NewServeMux()
		mux.Handle("/http-bind", s.boshH)
		mux.Handle("/http-bind/", s.boshH)
		mux.HandleFunc(wsPath, s.serveWebSocket) // ws.go
		if s.cfg.Web != nil {
			mux.Handle("/", http.FileServer(http.FS(s.cfg.Web)))
		}
		hs := &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		s.httpSrv = hs
		s.acceptWG.Add(1)
		go func() {
			defer s.acceptWG.Done()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Warn("http listener stopped", "err", err)
			}
		}()
	}
	return nil
}

func (s *Server) serveListener(ln net.Listener, m mode) {
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
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				s.log.Warn("accept failed", "err", err)
				select {
				case <-s.closed:
					return
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			go s.handle(c, m)
		}
	}()
}

// closeListeners stops accepting and waits for the accept loops. Callers
// hold lnMu.
func (s *Server) closeListeners() {
	if s.httpSrv != nil {
		_ = s.httpSrv.Close()
		s.httpSrv = nil
	}
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.listeners = nil
	s.acceptWG.Wait()
}

// Addr returns the bound address of the STARTTLS c2s listener, or "".
func (s *Server) Addr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.addr
}

// TLSAddr returns the bound address of the direct TLS listener, or "".
func (s *Server) TLSAddr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.tlsAddr
}

// HTTPAddr returns the bound address of the HTTP listener, or "".
func (s *Server) HTTPAddr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.httpAddr
}

// BOSHURL returns the BOSH endpoint ("http://127.0.0.1:port/http-bind"), or
// "" without an HTTP listener.
func (s *Server) BOSHURL() string {
	a := s.HTTPAddr()
	if a == "" {
		return ""
	}
	return "http://" + a + "/http-bind"
}

// Domain returns the served XMPP domain.
func (s *Server) Domain() string { return s.domain }

// MUCDomain returns the domain of the multi-user chat service.
func (s *Server) MUCDomain() string { return s.mucDomain }

// CertPool returns a pool trusting the server's certificate.
func (s *Server) CertPool() *x509.CertPool { return s.tls.pool }

// CACertPEM returns the server's certificate in PEM form.
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.tls.certPEM...) }

// ClientTLSConfig returns a TLS client configuration trusting the server,
// for the given server name ("localhost" when empty).
func (s *Server) ClientTLSConfig(serverName string) *tls.Config {
	if serverName == "" {
		serverName = "localhost"
	}
	return &tls.Config{RootCAs: s.tls.pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// Close stops the listeners, ends every connection and waits (for a bounded
// time) for them to finish. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.ctxStop != nil {
			s.ctxStop()
		}
		// Live BOSH sessions end with the server (system-shutdown to
		// their held requests) before the HTTP listener goes away.
		_ = s.boshH.Close()
		s.lnMu.Lock()
		s.closeListeners()
		s.lnMu.Unlock()
		s.DropAll()
		// Connections untrack themselves as their goroutines end; wait for
		// that, polling, for a bounded time.
		deadline := time.Now().Add(closeWait)
		for {
			s.mu.Lock()
			n := len(s.conns)
			s.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				s.log.Warn("connections still running after close", "count", n)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		s.log.Info("xmpp server stopped")
	})
	return nil
}

// AddAccount creates or updates an account; jid is a bare JID of the served
// domain or a localpart.
func (s *Server) AddAccount(bareJID, password string) {
	local := bareJID
	if i := strings.LastIndexByte(bareJID, '@'); i >= 0 {
		local = bareJID[:i]
		if dom := bareJID[i+1:]; !strings.EqualFold(dom, s.domain) {
			s.log.Warn("account of another domain added as a local account", "jid", bareJID)
		}
	}
	j, err := jid.New(local, s.domain, "")
	if err != nil || local == "" {
		s.log.Warn("invalid account ignored", "jid", bareJID, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[j.Localpart()] = password
	for k := range s.salts {
		if strings.HasPrefix(k, j.Localpart()+"\x00") {
			delete(s.salts, k)
		}
	}
}

// ServeConn runs one c2s stream over c until it ends. With secure set the
// stream counts as encrypted (as over BOSH): STARTTLS is not offered and SASL
// is available at once.
func (s *Server) ServeConn(c net.Conn, secure bool) {
	m := modeStartTLS
	if secure {
		m = modeSecure
	}
	s.handle(c, m)
}

// CutAll closes every client connection abruptly, as a network failure
// would, without ending the sessions on the server's side: a session that
// enabled stream management with resumption waits to be resumed (see
// Config.ResumeTimeout); the others end as their connection does.
func (s *Server) CutAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tc := range s.conns {
		_ = tc.Close()
	}
}

// Cut closes the connection of every session of the bare or full JID addr
// abruptly, as CutAll does for all. It returns ErrNoOccupant when no
// connected session matches.
func (s *Server) Cut(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.clients {
		if c.gone || c.hibernating || (c.bare != addr && c.full.String() != addr) {
			continue
		}
		_ = c.tc.Close()
		n++
	}
	if n == 0 {
		return ErrNoOccupant
	}
	return nil
}

// DropAll closes every client connection abruptly, without a stream error,
// and ends every session (none can be resumed), as a crash would.
func (s *Server) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		s.detachLocked(c)
	}
	for tc := range s.conns {
		_ = tc.Close()
	}
}

// SetDeaf makes the server ignore everything clients send (pings included)
// while keeping their connections open, or returns it to normal. New
// connections wait, unanswered, until the server hears again.
func (s *Server) SetDeaf(deaf bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if deaf == s.deaf {
		return
	}
	s.deaf = deaf
	if deaf {
		s.undeaf = make(chan struct{})
	} else {
		close(s.undeaf)
	}
}

// Restart behaves like a server restart: every connection is dropped, rooms,
// occupants, presence and pending subscription requests are forgotten
// (accounts and rosters are kept), connections are refused briefly, then the
// listeners bind the same addresses again.
func (s *Server) Restart(ctx context.Context) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	s.mu.Lock()
	s.refusing = true
	s.mu.Unlock()
	s.closeListeners()
	s.DropAll()
	s.mu.Lock()
	s.rooms = make(map[string]*room)
	s.pendingIn = make(map[string]map[string]bool)
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return ErrClosed
	case <-time.After(restartPause):
	}
	s.mu.Lock()
	s.refusing = false
	s.mu.Unlock()
	if err := s.listen(ctx); err != nil {
		s.log.Error("restart failed", "err", err)
		return err
	}
	s.log.Info("xmpp server restarted")
	return nil
}

// Online returns the bound resources of a local account, sorted.
func (s *Server) Online(bareJID string) []string {
	j, err := jid.Parse(bareJID)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.sessionsOf(j.Bare().String()) {
		out = append(out, c.full.Resourcepart())
	}
	return out
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	active, sessions := len(s.conns), len(s.clients)
	hib := 0
	for _, c := range s.clients {
		if c.hibernating {
			hib++
		}
	}
	s.mu.Unlock()
	return Stats{
		Accepted:      s.stats.accepted.Load(),
		Refused:       s.stats.refused.Load(),
		Active:        active,
		Sessions:      sessions,
		Logins:        s.stats.logins.Load(),
		Resumed:       s.stats.resumed.Load(),
		AuthFailures:  s.stats.authFailures.Load(),
		StanzasIn:     s.stats.stanzasIn.Load(),
		StanzasRouted: s.stats.routed.Load(),
		Rejected:      s.stats.rejected.Load(),
		StreamErrors:  s.stats.streamErr.Load(),
		Dropped:       s.stats.drops.Load(),
		Hibernating:   hib,
		Rescued:       s.stats.rescued.Load(),
	}
}

// trackedConn is an accepted connection: closing it is idempotent and
// observable, so DropAll and deaf waits can end it from any goroutine.
type trackedConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
	err  error
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		close(t.done)
		t.err = t.Conn.Close()
	})
	return t.err
}

// track registers c, or reports false when the server refuses it.
func (s *Server) track(c net.Conn) (*trackedConn, bool) {
	s.stats.accepted.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return nil, false
	default:
	}
	if s.refusing || len(s.conns) >= s.maxConns {
		return nil, false
	}
	tc := &trackedConn{Conn: c, done: make(chan struct{})}
	s.conns[tc] = struct{}{}
	return tc, true
}

func (s *Server) untrack(tc *trackedConn) {
	_ = tc.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, tc)
}

// waitHearing blocks while the server is deaf; it reports false when the
// connection or the server closed meanwhile.
func (s *Server) waitHearing(tc *trackedConn) bool {
	s.mu.Lock()
	deaf, ch := s.deaf, s.undeaf
	s.mu.Unlock()
	if !deaf {
		return true
	}
	select {
	case <-ch:
		return true
	case <-tc.done:
	case <-s.closed:
	}
	return false
}

// limitConn counts the bytes read since the last element boundary and fails
// reads past a hard cap, so a client cannot make the XML decoder buffer an
// unbounded token. The exact stanza size is checked on the parsed element;
// this cap is a little larger to allow for read-ahead and TLS framing.
type limitConn struct {
	net.Conn
	max      int64
	n        atomic.Int64
	exceeded atomic.Bool
}

func (l *limitConn) Read(p []byte) (int, error) {
	n, err := l.Conn.Read(p)
	if l.n.Add(int64(n)) > l.max {
		l.exceeded.Store(true)
		return n, errTooLarge
	}
	return n, err
}

func (l *limitConn) mark() { l.n.Store(0) }

var _ io.Reader = (*limitConn)(nil)
