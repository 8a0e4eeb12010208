// Package dnstest is a DNS server on loopback UDP for tests: it answers SRV
// and A queries from a fixed table and NXDOMAIN for every other name, and
// records the questions it was asked. Resolver returns a net.Resolver (Go's
// own resolver) that asks only this server, so that SRV lookups and the
// address lookups after them can be tested without touching the system's
// DNS.
package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// SRV is one SRV record of a name such as "_xmpp-client._tcp.example.test".
type SRV struct {
	Target   string // host name, or "." for "service decidedly not available"
	Port     uint16
	Priority uint16
	Weight   uint16
}

// Server is a running DNS server.
type Server struct {
	pc   net.PacketConn
	srv  map[string][]SRV
	a    map[string]netip.Addr
	mu   sync.Mutex
	seen []string // "TYPE name." of every question, in order
	done chan struct{}
}

// Start serves srv (SRV records by name) and a (IPv4 addresses by host
// name) on 127.0.0.1 until the test ends. Names are given without the
// trailing dot.
func Start(t interface {
	Helper()
	Fatalf(string, ...any)
	Cleanup(func())
}, srv map[string][]SRV, a map[string]string) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s := &Server{pc: pc, srv: map[string][]SRV{}, a: map[string]netip.Addr{}, done: make(chan struct{})}
	for name, rs := range srv {
		s.srv[fqdn(name)] = rs
	}
	for name, ip := range a {
		addr, err := netip.ParseAddr(ip)
		if err != nil || !addr.Is4() {
			pc.Close()
			t.Fatalf("dnstest: %s: %q is not an IPv4 address", name, ip)
		}
		s.a[fqdn(name)] = addr
	}
	go s.serve()
	t.Cleanup(func() {
		pc.Close()
		<-s.done
	})
	return s
}

func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// Addr is the server's UDP address.
func (s *Server) Addr() string { return s.pc.LocalAddr().String() }

// Resolver returns Go's resolver, asking this server only.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", s.Addr())
		},
	}
}

// Asked reports whether a question of type typ ("SRV", "A") for name was
// received.
func (s *Server) Asked(typ, name string) bool {
	q := typ + " " + fqdn(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.seen {
		if x == q {
			return true
		}
	}
	return false
}

// Questions returns every question received so far, as "TYPE name.".
func (s *Server) Questions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		resp, err := s.answer(buf[:n])
		if err != nil {
			continue // not a query we can parse: no answer, like a real server under attack
		}
		_, _ = s.pc.WriteTo(resp, from)
	}
}

// answer builds the response to one query message.
func (s *Server) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	s.seen = append(s.seen, strings.TrimPrefix(q.Type.String(), "Type")+" "+name)
	s.mu.Unlock()

	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	srvs, hasSRV := s.srv[name]
	addr, hasA := s.a[name]
	if !hasSRV && !hasA {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	switch {
	case q.Type == dnsmessage.TypeSRV && hasSRV:
		for _, r := range srvs {
			target, err := dnsmessage.NewName(fqdn(r.Target))
			if r.Target == "." {
				target, err = dnsmessage.NewName(".")
			}
			if err != nil {
				return nil, fmt.Errorf("dnstest: target %q: %w", r.Target, err)
			}
			if err := b.SRVResource(rr, dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: target}); err != nil {
				return nil, err
			}
		}
	case q.Type == dnsmessage.TypeA && hasA:
		if err := b.AResource(rr, dnsmessage.AResource{A: addr.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
