package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"crier/internal/miniserver"
	"crier/internal/wswire"
)

// TestMiniserverWebSocket logs in over WebSocket (RFC 7395) to the mini
// server, routes a message through it, and closes with <close/>.
func TestMiniserverWebSocket(t *testing.T) {
	s := startMini(t)
	rec := &recorder{}
	o := miniOptions(s)
	o.Transport, o.WSURL, o.Address, o.Tap = TransportWebSocket, s.WebSocketURL(), "", rec
	c := connect(t, o)
	if c.JID.String() != "bot@localhost/crier" || c.Transport != TransportWebSocket || c.Server != s.WebSocketURL() {
		t.Fatalf("JID=%s Transport=%s Server=%s", c.JID, c.Transport, c.Server)
	}
	// ws:// on loopback: not encrypted, so PLAIN stays out.
	if c.Secure || !strings.HasPrefix(c.Mechanism, "SCRAM-SHA-") {
		t.Errorf("Secure=%v Mechanism=%s", c.Secure, c.Mechanism)
	}
	if _, ok := rec.find(In, nsClient, "iq", "bot@localhost/crier"); !ok {
		t.Error("tap missed the bind result")
	}
	roundTrip(t, c, rec)
	st, ok := wswire.StatsOf(c.tc.NetConn())
	if !ok || st.MessagesSent < 5 || st.MessagesReceived < 5 || st.BadMessages != 0 {
		t.Errorf("stats %+v (found %v)", st, ok)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestWebSocketOptions: ws:// is refused towards a host that is not on
// loopback, other schemes are refused, and a missing URL is a config
// error.
func TestWebSocketOptions(t *testing.T) {
	s := startMini(t)
	old := hostMetaBase
	hostMetaBase = func(string) string { return "https://" + s.HTTPAddr() + "/nothing-here" } // nothing to discover
	t.Cleanup(func() { hostMetaBase = old })
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"ws://192.0.2.1/xmpp-websocket", ErrInsecure},
		{"http://127.0.0.1/xmpp-websocket", ErrConfig},
		{"", ErrResolve}, // and nothing to discover (TestDiscoverFailures)
		{"ws://" + s.HTTPAddr() + "/nothing-here", ErrConnect},
	} {
		o := miniOptions(s)
		o.Transport, o.WSURL, o.Timeout = TransportWebSocket, tc.url, 3*time.Second
		_, err := Connect(context.Background(), o)
		if !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.url, err, tc.want)
		}
	}
}

// TestWebSocketReasons: the ways a WebSocket session can break have their
// metric labels.
func TestWebSocketReasons(t *testing.T) {
	for err, want := range map[error]string{
		wswire.ErrFraming:      "protocol",
		wswire.ErrTooLarge:     "protocol",
		wswire.ErrProtocol:     "protocol",
		wswire.ErrClosedByPeer: "closed",
	} {
		if got := Reason(fmt.Errorf("read: %w", err)); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestWebSocketTLS: over wss:// the server's certificate is verified
// against the URL's host with the configured roots, as over TCP, and the
// connection counts as secure.
func TestWebSocketTLS(t *testing.T) {
	_, cert := localhostCert(t)
	s := startMiniWith(t, miniserver.Config{Domain: "localhost", Accounts: map[string]string{"bot@localhost": "pw"}, Certificate: &cert})
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, br, err := wswire.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.ServeConn(wswire.NewStreamConn(wswire.NewConn(nc, br, false, 0), wswire.StreamConfig{}), true)
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	wss := "wss://localhost:" + port + "/xmpp-websocket"

	o := miniOptions(s)
	o.Transport, o.WSURL, o.Address = TransportWebSocket, wss, ""
	c := connect(t, o)
	if !c.Secure || c.JID.String() != "bot@localhost/crier" {
		t.Errorf("Secure=%v JID=%s", c.Secure, c.JID)
	}
	_ = c.Close()

	o.TLSConfig = nil // the system's roots do not know the server
	if _, err := Connect(context.Background(), o); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "x509") {
		t.Errorf("untrusted certificate: %v", err)
	}
}

// TestWebSocketThroughProxy: with an HTTP proxy configured for the URL,
// the WebSocket goes through a CONNECT tunnel, with the proxy's
// credentials; a proxy that refuses the tunnel is a connect error.
func TestWebSocketThroughProxy(t *testing.T) {
	s := startMini(t)
	var tunnels, auths atomic.Int32
	refuse := atomic.Bool{}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || refuse.Load() {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		if r.Header.Get("Proxy-Authorization") == "Basic dTpw" { // u:p
			auths.Add(1)
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
		down, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		tunnels.Add(1)
		go func() { _, _ = io.Copy(up, brw); up.Close() }()
		_, _ = io.Copy(down, up)
		down.Close()
	}))
	defer proxy.Close()
	old := wsProxy
	wsProxy = func(*http.Request) (*url.URL, error) {
		u, _ := url.Parse(proxy.URL)
		u.User = url.UserPassword("u", "p")
		return u, nil
	}
	t.Cleanup(func() { wsProxy = old })

	o := miniOptions(s)
	o.Transport, o.WSURL, o.Address = TransportWebSocket, s.WebSocketURL(), ""
	c := connect(t, o)
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if tunnels.Load() != 1 || auths.Load() != 1 {
		t.Errorf("%d tunnels, %d with the credentials; want 1 and 1", tunnels.Load(), auths.Load())
	}
	refuse.Store(true)
	if _, err := Connect(context.Background(), o); !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "403") {
		t.Errorf("refused tunnel: %v", err)
	}
}
