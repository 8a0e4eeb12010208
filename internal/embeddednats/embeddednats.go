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
const readyTimeout = 10 * time.Second

// Server is a running in-process NATS server with JetStream enabled.
type Server struct {
	ns      *server.Server
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
	s := &Server{ns: ns, dir: dir, ownDir: ownDir}
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
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, err)
		}
	}
	return ErrNotReady
}

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
