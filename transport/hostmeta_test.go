package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"crier/internal/miniserver"
)

// hostMetaServer serves docs (path -> body) over https for "localhost" and
// points discovery at it for the test.
func hostMetaServer(t *testing.T, docs map[string]string) (certPEM []byte) {
	t.Helper()
	certPEM, cert := localhostCert(t)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	old := hostMetaBase
	hostMetaBase = func(domain string) string { return "https://" + domain + ":" + port }
	t.Cleanup(func() { hostMetaBase = old })
	return certPEM
}

// TestDiscoverWebSocket: with no WebSocket URL, the endpoint comes from the
// domain's host-meta.json, or from host-meta (XRD) when there is no JSON
// one, and crier signs in there.
func TestDiscoverWebSocket(t *testing.T) {
	s := startMini(t)
	for _, tc := range []struct {
		name string
		docs map[string]string
	}{
		{"json", map[string]string{"/.well-known/host-meta.json": `{"links":[` +
			`{"rel":"urn:xmpp:alt-connections:xbosh","href":"https://elsewhere.invalid/http-bind"},` +
			`{"rel":"urn:xmpp:alt-connections:websocket","href":"` + s.WebSocketURL() + `"}]}`}},
		{"xrd", map[string]string{"/.well-known/host-meta": `<?xml version='1.0' encoding='utf-8'?>
<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>
  <Link rel="urn:xmpp:alt-connections:websocket" href="` + s.WebSocketURL() + `"/>
</XRD>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPEM := hostMetaServer(t, tc.docs)
			o := miniOptions(s)
			roots := o.TLSConfig.RootCAs.Clone()
			roots.AppendCertsFromPEM(certPEM)
			o.TLSConfig = &tls.Config{RootCAs: roots}
			o.Transport, o.Address = TransportWebSocket, ""
			c := connect(t, o)
			if c.Server != s.WebSocketURL() || c.JID.String() != "bot@localhost/crier" {
				t.Fatalf("Server=%q JID=%s, want %q", c.Server, c.JID, s.WebSocketURL())
			}
		})
	}
}

// TestDiscoverBOSH: the same for BOSH, preferring https over http links.
func TestDiscoverBOSH(t *testing.T) {
	s := startMini(t)
	if got := pickLink([]hostLink{{relBOSH, "http://a/b"}, {relBOSH, "https://c/d"}}, relBOSH); got != "https://c/d" {
		t.Errorf("pickLink = %q, want the https one", got)
	}
	certPEM := hostMetaServer(t, map[string]string{"/.well-known/host-meta.json": `{"links":[{"rel":"urn:xmpp:alt-connections:xbosh","href":"` + s.BOSHURL() + `"}]}`})
	o := miniOptions(s)
	roots := o.TLSConfig.RootCAs.Clone()
	roots.AppendCertsFromPEM(certPEM)
	o.TLSConfig = &tls.Config{RootCAs: roots}
	o.Transport, o.Address = TransportBOSH, ""
	c := connect(t, o)
	if c.Server != s.BOSHURL() {
		t.Fatalf("Server=%q, want %q", c.Server, s.BOSHURL())
	}
}

// TestDiscoverFailures: no document, no matching link, a document over the
// size bound, and an untrusted certificate each fail Connect with their
// cause.
func TestDiscoverFailures(t *testing.T) {
	s := startMini(t)
	for _, tc := range []struct {
		name    string
		docs    map[string]string
		trust   bool
		want    error
		message string
	}{
		{"none", map[string]string{}, true, ErrResolve, "no WebSocket endpoint found for localhost"},
		{"no link", map[string]string{"/.well-known/host-meta.json": `{"links":[{"rel":"urn:xmpp:alt-connections:xbosh","href":"https://x/y"}]}`}, true, ErrResolve, "no urn:xmpp:alt-connections:websocket link"},
		{"not json", map[string]string{"/.well-known/host-meta.json": `<html>`}, true, ErrResolve, "not a JSON host-meta document"},
		{"huge", map[string]string{"/.well-known/host-meta.json": `{"links":[],"x":"` + strings.Repeat("a", maxHostMeta) + `"}`}, true, ErrResolve, "larger than"},
		{"untrusted", map[string]string{}, false, ErrTLS, "x509"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPEM := hostMetaServer(t, tc.docs)
			o := miniOptions(s)
			if tc.trust {
				roots := o.TLSConfig.RootCAs.Clone()
				roots.AppendCertsFromPEM(certPEM)
				o.TLSConfig = &tls.Config{RootCAs: roots}
			}
			o.Transport, o.Address = TransportWebSocket, ""
			_, err := Connect(context.Background(), o)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("Connect: %v, want %v with %q", err, tc.want, tc.message)
			}
		})
	}
}

// localhostCert returns a new self-signed certificate for "localhost",
// as PEM and ready for a TLS server.
func localhostCert(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	certPEM, keyPEM, err := miniserver.NewCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, cert
}
