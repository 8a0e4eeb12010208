package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"crier/internal/wswire"
)

// TestWebSocketSeeOtherURI: a server that answers <open/> with
// <close see-other-uri/> sends crier to the other endpoint, where it signs
// in (RFC 7395 §3.6.1); a server that keeps redirecting is given up on
// after a bound.
func TestWebSocketSeeOtherURI(t *testing.T) {
	first, second := startMini(t), startMini(t)
	first.RedirectWebSocket(second.WebSocketURL(), 1)
	o := miniOptions(first)
	o.Transport, o.WSURL, o.Address = TransportWebSocket, first.WebSocketURL(), ""
	c := connect(t, o)
	if got := second.Online("bot@localhost"); len(got) != 1 {
		t.Fatalf("sessions on the endpoint redirected to: %q, want one", got)
	}
	if got := first.Online("bot@localhost"); len(got) != 0 {
		t.Fatalf("sessions on the redirecting endpoint: %q, want none", got)
	}
	if c.Server != second.WebSocketURL() {
		t.Errorf("Conn.Server = %q, want %q", c.Server, second.WebSocketURL())
	}
	_ = c.Close()

	first.RedirectWebSocket(first.WebSocketURL(), 100)
	_, err := Connect(context.Background(), o)
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "more than 3 see-other-uri redirects") {
		t.Fatalf("endless redirects: %v", err)
	}
	first.RedirectWebSocket("http://127.0.0.1:1/not-a-websocket", 1)
	if _, err := Connect(context.Background(), o); !errors.Is(err, ErrProtocol) {
		t.Fatalf("redirect to an http:// URL: %v", err)
	}
}

// TestWebSocketRedirectKeepsTLS: from wss:// a redirect to ws:// is
// refused, though the target is on this machine.
func TestWebSocketRedirectKeepsTLS(t *testing.T) {
	certPEM, cert := localhostCert(t)
	plain := startMini(t)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, br, err := wswire.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer nc.Close()
		ws := wswire.NewConn(nc, br, false, 0)
		if _, err := ws.ReadMessage(); err != nil {
			return
		}
		_ = ws.WriteText([]byte("<close xmlns='" + wswire.NSFraming + "' see-other-uri='" + plain.WebSocketURL() + "'/>"))
		_ = ws.WriteClose(wswire.CloseNormal, "")
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	o := miniOptions(plain)
	o.TLSConfig = &tls.Config{RootCAs: pool(t, certPEM)}
	o.Transport, o.WSURL, o.Address = TransportWebSocket, "wss://localhost:"+port+"/xmpp-websocket", ""
	_, err := Connect(context.Background(), o)
	if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "would drop TLS") {
		t.Fatalf("wss:// redirected to ws://: %v", err)
	}
	if got := plain.Online("bot@localhost"); len(got) != 0 {
		t.Fatalf("signed in over the downgraded endpoint: %q", got)
	}
}

func pool(t *testing.T, certPEM []byte) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in the PEM")
	}
	return p
}
