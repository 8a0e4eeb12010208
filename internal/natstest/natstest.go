// Package natstest runs in-process NATS servers with JetStream for tests:
// one server, or a cluster of several routed on loopback ports, and a TCP
// proxy that a test can pause or cut to partition a client from NATS.
// Production code never imports it.
//
//	c := natstest.StartCluster(t, 3)
//	nc, js := natstest.Connect(t, c.URLs())
//	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b", Replicas: 3})
package natstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds every wait of this package.
const readyTimeout = 30 * time.Second

// Server is one in-process nats-server with JetStream.
type Server struct {
	*server.Server
	opts *server.Options
	port int // the client port chosen at the first start, kept by Restart
}

// Start runs one server with JetStream in a temporary directory, on a random
// loopback port, and stops it at the test's end.
func Start(t testing.TB) *Server {
	t.Helper()
	s := newServer(t, &server.Options{ServerName: "single", StoreDir: t.TempDir()})
	t.Cleanup(s.Stop)
	return s
}

func newServer(t testing.TB, o *server.Options) *Server {
	t.Helper()
	o.Host = "127.0.0.1"
	o.Port = server.RANDOM_PORT
	o.JetStream = true
	o.NoLog = true
	o.NoSigs = true
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		t.Fatalf("nats server %s not ready after %v", o.ServerName, readyTimeout)
	}
	return &Server{Server: ns, opts: o.Clone(), port: ns.Addr().(*net.TCPAddr).Port}
}

// Restart starts the server again, stopped or not, with the same name,
// ports and JetStream directory, and waits until it takes connections and,
// in a cluster, until its JetStream caught up with the meta group.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	o := s.opts.Clone()
	o.Port = s.port
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("nats server %s restart: %v", o.ServerName, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		t.Fatalf("nats server %s not ready after %v", o.ServerName, readyTimeout)
	}
	s.Server = ns
	if o.Cluster.Port == 0 {
		return
	}
	// A cluster node answers JetStream requests once it caught up with
	// the meta group (which needs a quorum of the nodes).
	deadline := time.Now().Add(readyTimeout)
	for !ns.JetStreamIsCurrent() {
		if time.Now().After(deadline) {
			t.Fatalf("nats server %s did not catch up with the cluster in %v", o.ServerName, readyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down and waits for it. Safe twice.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// URL is the server's client URL.
func (s *Server) URL() string { return s.ClientURL() }

// Cluster is a set of servers routed to each other, with JetStream
// clustered across them.
type Cluster struct {
	Servers []*Server
}

// StartCluster runs n servers (n >= 3 for replicated streams) with routes on
// random loopback ports and waits until JetStream has a meta leader that
// sees every peer, so that a bucket with n replicas can be created. They
// stop at the test's end.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	// JetStream clustering needs every server to have routes configured,
	// so the cluster ports are chosen first (a listener opened and closed
	// on each) and every server is given all of them.
	ports := make([]int, n)
	var routes []string
	for i := range n {
		ports[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			StoreDir:   t.TempDir(),
			Cluster: server.ClusterOpts{
				Name: "crier-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s := newServer(t, o)
		t.Cleanup(s.Stop)
		c.Servers = append(c.Servers, s)
	}
	c.waitPeers(t, n)
	return c
}

// waitPeers waits until a meta leader reports n JetStream peers.
func (c *Cluster) waitPeers(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("JetStream cluster of %d servers did not form in %v", n, readyTimeout)
}

// URLs is every server's client URL, comma-separated (what nats.Connect
// takes).
func (c *Cluster) URLs() string {
	urls := make([]string, 0, len(c.Servers))
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection to urls with a JetStream context; it is
// closed at the test's end.
func Connect(t testing.TB, urls string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Context returns a context that ends after d or at the test's end.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// freePort returns a loopback port nobody listens on (a listener opened
// and closed).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
