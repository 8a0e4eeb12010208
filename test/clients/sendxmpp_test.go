//go:build clients

// Package clients_test runs XMPP clients nobody here wrote against the
// embedded mini server, as a user trying the demo would. The test script
// installs them (scripts/peers/install.sh); a missing client fails the
// test, it never skips.
package clients_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// demoAccounts are the demo's users (README: alice/alice, bob/bob).
var demoAccounts = map[string]string{"alice@localhost": "alice", "bob@localhost": "bob"}

// startDemoServer runs the mini server with the demo's accounts and writes
// its certificate where go-sendxmpp finds it (SSL_CERT_FILE).
func startDemoServer(t *testing.T) (*miniserver.Server, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := miniserver.Start(ctx, miniserver.Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		TLSAddr:  "127.0.0.1:0",
		Accounts: demoAccounts,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); cancel() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, s.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return s, ca
}

// sendxmpp runs go-sendxmpp with args, body on its standard input, a home
// of its own (no configuration file) and the server's certificate trusted.
func sendxmpp(t *testing.T, ca, body string, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("go-sendxmpp")
	if err != nil {
		t.Fatalf("go-sendxmpp is not installed (scripts/peers/install.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca, "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// TestGoSendxmppToDemoUser: go-sendxmpp (which writes a newline after its
// stream header) logs in as a demo user, over STARTTLS and direct TLS,
// and sends a message that the other demo user receives.
func TestGoSendxmppToDemoUser(t *testing.T) {
	s, ca := startDemoServer(t)
	bob := xmpptest.Dial(t, xmpptest.Options{Addr: s.Addr(), JID: "bob@localhost", Password: "bob", Resource: "phone", RootCAs: s.CertPool()})
	for _, tc := range []struct {
		name string
		addr string
		args []string
	}{
		{"starttls", s.Addr(), nil},
		{"direct", s.TLSAddr(), []string{"-t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "hello from go-sendxmpp over " + tc.name
			args := append([]string{"-u", "alice@localhost", "-p", "alice", "-j", tc.addr, "--timeout", "10"}, tc.args...)
			args = append(args, "bob@localhost")
			out, err := sendxmpp(t, ca, body+"\n", 30*time.Second, args...)
			if err != nil {
				t.Fatalf("go-sendxmpp: %v\n%s", err, out)
			}
			got := bob.Expect(t, 10*time.Second, func(st xmpptest.Stanza) bool {
				return strings.TrimSpace(st.Body) == body
			})
			if !strings.HasPrefix(got.From, "alice@localhost/") {
				t.Errorf("message from %q, want alice@localhost/…", got.From)
			}
		})
	}
}

// TestGoSendxmppListens: go-sendxmpp listening as a demo user prints the
// message another demo user sends it.
func TestGoSendxmppListens(t *testing.T) {
	s, ca := startDemoServer(t)
	bin, err := exec.LookPath("go-sendxmpp")
	if err != nil {
		t.Fatalf("go-sendxmpp is not installed (scripts/peers/install.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-u", "bob@localhost", "-p", "bob", "-j", s.Addr(), "-l")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca, "HOME="+t.TempDir())
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for len(s.Online("bob@localhost")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("go-sendxmpp did not log in as bob:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: s.Addr(), JID: "alice@localhost", Password: "alice", RootCAs: s.CertPool()})
	if err := alice.SendMessage("bob@localhost", "chat", "hello go-sendxmpp"); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "hello go-sendxmpp") {
		if time.Now().After(deadline) {
			t.Fatalf("go-sendxmpp did not print the message:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
