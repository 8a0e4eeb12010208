package transport

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"crier/internal/dnstest"
	"crier/internal/miniserver"
)

// startMiniDomain runs the embedded server for the domain example.test,
// with plain and direct TLS listeners on loopback.
func startMiniDomain(t *testing.T) *miniserver.Server {
	t.Helper()
	return startMiniWith(t, miniserver.Config{
		Domain:   "example.test",
		Addr:     "127.0.0.1:0",
		TLSAddr:  "127.0.0.1:0",
		Accounts: map[string]string{"bot@example.test": "pw"},
	})
}

func port(t *testing.T, addr string) uint16 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, l.Addr().String())
	l.Close()
	return p
}

// TestSRVLookup: with no address configured, the server is found through
// the SRV records of the JID's domain (RFC 6120 §3.2, XEP-0368), asked of
// a DNS server on loopback through Go's own resolver: the target's
// address is looked up as well, records are tried by priority, and a
// target of "." (service not available) ends in a clear error.
func TestSRVLookup(t *testing.T) {
	s := startMiniDomain(t)
	hosts := map[string]string{"c2s.example.test": "127.0.0.1", "tls.example.test": "127.0.0.1", "dead.example.test": "127.0.0.1"}
	opts := func(d *dnstest.Server, mode string) Options {
		return Options{
			JID:       jid.MustParse("bot@example.test"),
			Password:  "pw",
			Resource:  "srv",
			TLS:       mode,
			TLSConfig: &tls.Config{RootCAs: s.CertPool()},
			Timeout:   10 * time.Second,
			Resolver:  d.Resolver(),
		}
	}
	connect := func(t *testing.T, o Options) {
		t.Helper()
		c, err := Connect(context.Background(), o)
		if err != nil {
			t.Fatalf("Connect by SRV: %v", err)
		}
		defer c.Close()
		if c.JID.String() != "bot@example.test/srv" {
			t.Fatalf("bound %s", c.JID)
		}
	}

	t.Run("starttls", func(t *testing.T) {
		d := dnstest.Start(t, map[string][]dnstest.SRV{
			"_xmpp-client._tcp.example.test": {{Target: "c2s.example.test", Port: port(t, s.Addr())}},
		}, hosts)
		connect(t, opts(d, TLSStartTLS))
		for _, q := range [][2]string{{"SRV", "_xmpp-client._tcp.example.test"}, {"A", "c2s.example.test"}} {
			if !d.Asked(q[0], q[1]) {
				t.Errorf("no %s question for %s; asked: %v", q[0], q[1], d.Questions())
			}
		}
		if d.Asked("SRV", "_xmpps-client._tcp.example.test") {
			t.Errorf("asked for direct TLS records although tls is starttls")
		}
	})

	t.Run("direct", func(t *testing.T) {
		d := dnstest.Start(t, map[string][]dnstest.SRV{
			"_xmpps-client._tcp.example.test": {{Target: "tls.example.test", Port: port(t, s.TLSAddr())}},
		}, hosts)
		connect(t, opts(d, TLSDirect))
		if !d.Asked("SRV", "_xmpps-client._tcp.example.test") || !d.Asked("A", "tls.example.test") {
			t.Errorf("direct TLS not found through _xmpps-client; asked: %v", d.Questions())
		}
	})

	t.Run("priority", func(t *testing.T) {
		// The preferred record points at a closed port: the next one is
		// tried.
		d := dnstest.Start(t, map[string][]dnstest.SRV{
			"_xmpp-client._tcp.example.test": {
				{Target: "c2s.example.test", Port: port(t, s.Addr()), Priority: 20},
				{Target: "dead.example.test", Port: closedPort(t), Priority: 10},
			},
		}, hosts)
		connect(t, opts(d, TLSStartTLS))
		if !d.Asked("A", "dead.example.test") {
			t.Errorf("the record with the lower priority value was not tried first; asked: %v", d.Questions())
		}
	})

	t.Run("not-available", func(t *testing.T) {
		d := dnstest.Start(t, map[string][]dnstest.SRV{
			"_xmpp-client._tcp.example.test": {{Target: "."}},
		}, hosts)
		_, err := Connect(context.Background(), opts(d, TLSStartTLS))
		if err == nil {
			t.Fatal("Connect succeeded although the domain says it has no XMPP service")
		}
		if !strings.Contains(err.Error(), "example.test") {
			t.Errorf("the error does not name the domain: %v", err)
		}
		t.Logf("error: %v", err)
	})
}
