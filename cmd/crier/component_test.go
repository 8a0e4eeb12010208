//go:build !noembed

package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// TestEmbeddedComponent: with [embedded] xmpp on and transport
// "component", the embedded server serves the bot as its component
// (xmpp.address) and the demo's users on embedded.address; a user's
// !ping to any address on the component's domain is answered from it.
func TestEmbeddedComponent(t *testing.T) {
	dir := t.TempDir()
	comp, c2s, ops, web := crierproc.FreePort(t), crierproc.FreePort(t), crierproc.FreePort(t), crierproc.FreePort(t)
	path := writeIn(t, dir, "config.toml", fmt.Sprintf(`[xmpp]
transport = "component"
jid = "alerts.localhost"
password = "s3cret"
address = %q
tls = "none"

[http]
listen = %q

[embedded]
xmpp = true
address = %q
http = %q

[[embedded.accounts]]
jid = "alice@localhost"
password = "alicepw"

[[rules]]
name = "ping"
match = "^!ping$"
reply = "pong {{.Nick}}"
`, comp, ops, c2s, web))
	if code, _, errs := runCLI("check", "-c", path); code != 0 {
		t.Fatalf("crier check: exit %d\n%s", code, errs)
	}
	d := startDaemon(t, path)
	waitReady(t, d, ops)
	pem, err := os.ReadFile(filepath.Join(dir, demoCertDir, "embedded-localhost.pem"))
	if err != nil {
		t.Fatal(err)
	}
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: c2s, JID: "alice@localhost", Password: "alicepw", RootCAs: poolOf(t, pem), Timeout: 5 * time.Second})
	for _, to := range []string{"crier@alerts.localhost", "disk@alerts.localhost"} {
		if err := alice.SendMessage(to, "chat", "!ping"); err != nil {
			t.Fatal(err)
		}
		alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.From == to && s.Body == "pong alice"
		})
	}
	if strings.Contains(d.logs.String(), "s3cret") {
		t.Error("the component secret is in the log")
	}
}

func poolOf(t *testing.T, pem []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the demo's PEM file")
	}
	return pool
}

// TestSendAsComponent: crier send connects as a component with flags
// alone and sends from --from, into a room from an occupant address under
// it; --from without a component, or off its domain, is bad usage.
func TestSendAsComponent(t *testing.T) {
	srv, _ := mini(t, miniserver.Config{ComponentAddr: "127.0.0.1:0", Components: map[string]string{"alerts.localhost": "s3cret"}})
	alice := user(t, srv, "alice")
	if err := alice.Join(lobby, "alice"); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	t.Setenv("CRIER_XMPP_PASSWORD", "s3cret")
	args := []string{"send", "--transport", "component", "--jid", "alerts.localhost", "--address", srv.ComponentAddr(), "--tls", "none"}
	code, _, errs := runIn("", append(args, "--from", "disk@alerts.localhost", "--to", "alice@localhost", "--to", lobby, "disk", "full")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.From == "disk@alerts.localhost" && s.Body == "disk full"
	})
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool {
		return s.Type == "groupchat" && strings.HasPrefix(s.From, lobby+"/disk-send-") && s.Body == "disk full"
	})

	code, _, errs = runIn("", append(args, "--from", "disk@example.org", "--to", "alice@localhost", "x")...)
	if code != 2 || !strings.Contains(errs, "not on the component's domain") || !strings.Contains(errs, "--from") {
		t.Errorf("--from off the domain: exit %d: %s", code, errs)
	}
	t.Setenv("CRIER_XMPP_PASSWORD", "botpw")
	code, _, errs = runIn("", "send", "--jid", "crier@localhost", "--address", srv.Addr(), "--from", "x@localhost", "--to", "alice@localhost", "x")
	if code != 2 || !strings.Contains(errs, "component") {
		t.Errorf("--from without a component: exit %d: %s", code, errs)
	}
}
