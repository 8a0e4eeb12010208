package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

const lobby = "lobby@conference.localhost"

// mini starts a mini server on loopback with the accounts crier, alice
// and bob (passwords botpw, alicepw, bobpw) and writes its certificate to
// a file, for --ca-file.
func mini(t *testing.T, cfg miniserver.Config) (*miniserver.Server, string) {
	t.Helper()
	cfg.Domain = "localhost"
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Accounts = map[string]string{"crier@localhost": "botpw", "alice@localhost": "alicepw", "bob@localhost": "bobpw"}
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := miniserver.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, crierproc.WriteFile(t, "ca.pem", srv.CACertPEM())
}

func user(t *testing.T, srv *miniserver.Server, name string) *xmpptest.Client {
	t.Helper()
	return xmpptest.Dial(t, xmpptest.Options{Addr: srv.Addr(), JID: name + "@localhost", Password: name + "pw", RootCAs: srv.CertPool(), Timeout: 5 * time.Second})
}

// runIn is runCLI with standard input.
func runIn(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func fromBot(body string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool {
		return s.Name == "message" && strings.HasPrefix(s.From, "crier@localhost/") && s.Body == body
	}
}

// TestSendSeveralRecipientsWithoutConfig sends one message to two users
// and a room, with the account from flags and the environment only, from
// a directory without a config file: each recipient gets it, the users
// with the asked type, the room as groupchat.
func TestSendSeveralRecipientsWithoutConfig(t *testing.T) {
	srv, ca := mini(t, miniserver.Config{HTTPAddr: "127.0.0.1:0"})
	alice, bob := user(t, srv, "alice"), user(t, srv, "bob")
	if err := alice.Join(lobby, "alice"); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	t.Setenv("CRIER_XMPP_PASSWORD", "botpw")
	code, _, errs := runIn("", "send", "--jid", "crier@localhost", "--address", srv.Addr(), "--ca-file", ca,
		"--to", "alice@localhost", "--to", "bob@localhost", "--to", lobby, "--type", "headline", "disk", "full")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, c := range []*xmpptest.Client{alice, bob} {
		got := c.Expect(t, 5*time.Second, fromBot("disk full"))
		if got.Type != "headline" {
			t.Errorf("%s got type %q, want headline", c.JID(), got.Type)
		}
	}
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool {
		return s.Type == "groupchat" && strings.HasPrefix(s.From, lobby+"/crier-send-") && s.Body == "disk full"
	})

	// The same from the environment alone, body on standard input.
	t.Setenv("CRIER_XMPP_JID", "crier@localhost")
	t.Setenv("CRIER_XMPP_ADDRESS", srv.Addr())
	t.Setenv("CRIER_XMPP_CA_FILE", ca)
	if code, _, errs := runIn("from stdin\n", "send", "--to", "bob@localhost", "--to", "alice@localhost", "-"); code != 0 {
		t.Fatalf("environment: exit %d: %s", code, errs)
	}
	for _, c := range []*xmpptest.Client{bob, alice} {
		if got := c.Expect(t, 5*time.Second, fromBot("from stdin")); got.Type != "chat" {
			t.Errorf("%s got type %q, want chat", c.JID(), got.Type)
		}
	}

	// Over BOSH, chosen by flags.
	if code, _, errs := runIn("", "send", "--transport", "bosh", "--bosh-url", "http://"+srv.HTTPAddr()+"/http-bind",
		"--to", "alice@localhost", "--to", lobby, "over bosh"); code != 0 {
		t.Fatalf("bosh: exit %d: %s", code, errs)
	}
	alice.Expect(t, 5*time.Second, fromBot("over bosh"))
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool { return s.Type == "groupchat" && s.Body == "over bosh" })

	// Over WebSocket, chosen by flags.
	if code, _, errs := runIn("", "send", "--transport", "websocket", "--websocket-url", "ws://"+srv.HTTPAddr()+"/xmpp-websocket",
		"--to", "alice@localhost", "--to", lobby, "over websocket"); code != 0 {
		t.Fatalf("websocket: exit %d: %s", code, errs)
	}
	alice.Expect(t, 5*time.Second, fromBot("over websocket"))
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool { return s.Type == "groupchat" && s.Body == "over websocket" })
}

// TestSendExitCodes checks 2 for bad usage, 1 for what was not delivered
// (naming the recipient, while the others still get theirs), 0 for help.
func TestSendExitCodes(t *testing.T) {
	srv, ca := mini(t, miniserver.Config{})
	alice := user(t, srv, "alice")
	t.Chdir(t.TempDir())
	t.Setenv("CRIER_XMPP_PASSWORD", "botpw")
	acct := []string{"send", "--jid", "crier@localhost", "--address", srv.Addr(), "--ca-file", ca, "--timeout", "10s"}
	with := func(extra ...string) []string { return append(append([]string(nil), acct...), extra...) }
	big := strings.Repeat("x", maxSendBody+1)
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		say   string // in stderr
	}{
		{"help", "", []string{"send", "--help"}, 0, ""},
		{"no --to", "", with("hello"), 2, "--to is required"},
		{"bad --to", "", with("--to", "a@@b", "hello"), 2, "not a JID"},
		{"bad --type", "", with("--to", "alice@localhost", "--type", "shout", "hello"), 2, "--type"},
		{"unknown flag", "", with("--frobnicate", "--to", "alice@localhost", "x"), 2, "not defined"},
		{"nothing to send", "", with("--to", "alice@localhost", "-"), 2, "nothing to send"},
		{"body too long", big, with("--to", "alice@localhost", "-"), 2, "longer than"},
		{"no JID", "", []string{"send", "--address", srv.Addr(), "--to", "alice@localhost", "x"}, 2, "--jid or CRIER_XMPP_JID"},
		{"clear text to a remote server", "", with("--tls", "none", "--address", "192.0.2.1:5222", "--to", "alice@localhost", "x"), 2, "--tls"},
		{"bad transport", "", with("--transport", "pigeon", "--to", "alice@localhost", "x"), 2, "--transport"},
		{"missing CA file", "", with("--ca-file", filepath.Join(t.TempDir(), "nope.pem"), "--to", "alice@localhost", "x"), 2, "ca_file"},
		{"unknown domain", "", with("--to", "alice@localhost", "--to", "bob@elsewhere.example", "partly"), 1, "bob@elsewhere.example"},
		{"untrusted certificate", "", []string{"send", "--jid", "crier@localhost", "--address", srv.Addr(), "--to", "alice@localhost", "x"}, 1, "certificate"},
		{"server down", "", []string{"send", "--jid", "crier@localhost", "--address", crierproc.FreePort(t), "--timeout", "5s", "--to", "alice@localhost", "x"}, 1, "crier send:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runIn(tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.say) {
				t.Fatalf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tc.code, tc.say, out, errs)
			}
		})
	}
	// The recipient that could be reached got its message although the
	// other could not.
	alice.Expect(t, 5*time.Second, fromBot("partly"))

	t.Setenv("CRIER_XMPP_PASSWORD", "not-the-password")
	code, _, errs := runIn("", "send", "--jid", "crier@localhost", "--address", srv.Addr(), "--ca-file", ca, "--to", "alice@localhost", "x")
	if code != 1 || strings.Contains(errs, "not-the-password") {
		t.Fatalf("wrong password: exit %d, want 1 without the password in: %s", code, errs)
	}
	// A --password-file wins over the environment.
	pw := crierproc.WriteFile(t, "pw", []byte("botpw\n"))
	if code, _, errs := runIn("", "send", "--jid", "crier@localhost", "--password-file", pw, "--address", srv.Addr(), "--ca-file", ca, "--to", "alice@localhost", "by file"); code != 0 {
		t.Fatalf("--password-file: exit %d: %s", code, errs)
	}
	alice.Expect(t, 5*time.Second, fromBot("by file"))
}

// TestSendExitCodesOfTheBinary runs the built binary, as scripts do: the
// exit codes are the process's own (go run would turn 2 into 1).
func TestSendExitCodesOfTheBinary(t *testing.T) {
	bin := crierproc.Binary(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"send", "--jid", "crier@localhost", "x"}, 2},
		{[]string{"send", "--jid", "crier@localhost", "--address", crierproc.FreePort(t), "--timeout", "5s", "--to", "alice@localhost", "x"}, 1},
		{[]string{"send", "--help"}, 0},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CRIER_XMPP_PASSWORD=botpw")
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("crier %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), code, tc.code, out)
		}
	}
}

// TestTLS12Minimum checks both sides refuse TLS older than 1.2: crier send
// to a server that offers only TLS 1.1, and a TLS 1.1 client to the
// embedded server's direct TLS port.
func TestTLS12Minimum(t *testing.T) {
	certPEM, keyPEM, err := miniserver.NewCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca := crierproc.WriteFile(t, "old-ca.pem", certPEM)
	old := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", old)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	// The old server works for a client that accepts TLS 1.1: a refusal
	// below is about the version.
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err != nil {
		t.Fatalf("control: a TLS 1.1 client cannot reach the TLS 1.1 server: %v", err)
	}
	c.Close()
	t.Setenv("CRIER_XMPP_PASSWORD", "botpw")
	code, _, errs := runIn("", "send", "--jid", "crier@localhost", "--address", ln.Addr().String(), "--tls", "direct", "--ca-file", ca, "--timeout", "5s", "--to", "alice@localhost", "x")
	if code != 1 || !strings.Contains(errs, "protocol version") {
		t.Fatalf("send to a TLS 1.1 server: exit %d: %s", code, errs)
	}

	srv, _ := mini(t, miniserver.Config{TLSAddr: "127.0.0.1:0"})
	_, err = tls.Dial("tcp", srv.TLSAddr(), &tls.Config{RootCAs: srv.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, NextProtos: []string{"xmpp-client"}})
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("a TLS 1.1 client to the embedded server: %v", err)
	}
	c, err = tls.Dial("tcp", srv.TLSAddr(), &tls.Config{RootCAs: srv.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12, NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatalf("control: a TLS 1.2 client to the embedded server: %v", err)
	}
	c.Close()
}
