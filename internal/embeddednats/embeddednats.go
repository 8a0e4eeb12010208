package embeddednats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Errors of this package.
var (
	// ErrNotLoopback is returned for a URL whose host is not a loopback
	// address: the embedded server is for demos and tests only.
	ErrNotLoopback = errors.New("embeddednats: host must be a loopback address")
	// ErrNotReady is returned when the server did not accept connections
	// in time.
	ErrNotReady = errors.New("embeddednats: server not ready")
)

// readyTimeout bounds how long Start waits for the server to listen.
const readyTimeout = 30 * time.Second

// Server is a running in-process NATS server with JetStream enabled.
type Server struct {
	ns      *server.Server
	log     *errorLog
	dir     string
	ownDir  bool
	once    sync.Once
	clientU string
}

// Start runs a NATS server listening on the host and port of rawURL (a
// nats:// URL on 127.0.0.1, ::1 or localhost; port 0 picks a free port) and
// returns once it accepts connections. JetStream keeps its store under dir;
// an empty dir means a new temporary directory, removed by Close.
func Start(ctx context.Context, rawURL string, dir string) (*Server, error) {
	host, port, err := listenAddr(rawURL)
	if err != nil {
		return nil, err
	}
	ownDir := false
	if dir == "" {
		dir, err = os.MkdirTemp("", "crier-nats-*")
		if err != nil {
			return nil, fmt.Errorf("embeddednats: store directory: %w", err)
		}
		ownDir = true
	}
	if port == 0 {
		// The server reads port 0 as its default, 4222.
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "crier-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		// No HTTP monitoring, cluster or leaf listeners: one client port.
		HTTPPort: 0,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		if ownDir {
			_ = os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("embeddednats: %w", err)
	}
	s := &Server{ns: ns, dir: dir, ownDir: ownDir, log: &errorLog{}}
	ns.SetLogger(s.log, false, false)
	go ns.Start()
	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if !ns.JetStreamEnabled() {
		s.Close()
		return nil, fmt.Errorf("%w: JetStream is off", ErrNotReady)
	}
	s.clientU = ns.ClientURL()
	return s, nil
}

// waitReady waits for the client listener, in short steps so that ctx can
// end the wait early; the whole wait is bounded by readyTimeout.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if s.ns.ReadyForConnections(100 * time.Millisecond) {
			return nil
		}
		if msg := s.log.fatal(); msg != "" {
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w%s", ErrNotReady, err, s.log.String())
		}
	}
	return fmt.Errorf("%w after %s%s", ErrNotReady, readyTimeout, s.log.String())
}

// errorLog keeps the server's last warnings and errors, to explain a
// server that does not start; the rest is discarded.
type errorLog struct {
	mu       sync.Mutex
	msgs     []string
	fatalMsg string // the first fatal error: the server will not start
}

// fatal returns the first fatal error logged, or "".
func (l *errorLog) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg
}

func (l *errorLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.msgs) == 8 {
		l.msgs = l.msgs[1:]
	}
	l.msgs = append(l.msgs, fmt.Sprintf(format, v...))
}

// String returns the kept messages, each after "; ".
func (l *errorLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, m := range l.msgs {
		b.WriteString("; ")
		b.WriteString(m)
	}
	return b.String()
}

// Noticef discards the message.
func (l *errorLog) Noticef(string, ...any) {}

// Warnf keeps the message.
func (l *errorLog) Warnf(format string, v ...any) { l.add(format, v...) }

// Fatalf keeps the message and makes Start fail at once.
func (l *errorLog) Fatalf(format string, v ...any) {
	l.add(format, v...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatalMsg == "" {
		l.fatalMsg = fmt.Sprintf(format, v...)
	}
}

// Errorf keeps the message.
func (l *errorLog) Errorf(format string, v ...any) { l.add(format, v...) }

// Debugf discards the message.
func (l *errorLog) Debugf(string, ...any) {}

// Tracef discards the message.
func (l *errorLog) Tracef(string, ...any) {}

// listenAddr returns the loopback host and the port of a nats:// URL.
func listenAddr(rawURL string) (string, int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", 0, fmt.Errorf("embeddednats: %q is not a URL: %w", rawURL, err)
	}
	if u.Scheme != "nats" {
		return "", 0, fmt.Errorf("embeddednats: %q must be a nats:// URL", rawURL)
	}
	host, portStr := u.Hostname(), u.Port()
	if portStr == "" {
		portStr = "4222"
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("embeddednats: %q has an invalid port", rawURL)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("%w, not %q", ErrNotLoopback, host)
	}
	return ip.String(), port, nil
}

// ClientURL returns the URL clients connect to, with the port actually
// chosen.
func (s *Server) ClientURL() string { return s.clientU }

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string {
	if a, ok := s.ns.Addr().(*net.TCPAddr); ok {
		return a.String()
	}
	return ""
}

// Close shuts the server down, waits for it to finish and removes its store
// when Start created it. It is safe to call more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		if s.ownDir {
			_ = os.RemoveAll(s.dir)
		}
	})
}
