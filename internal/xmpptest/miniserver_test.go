package xmpptest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"crier/internal/miniserver"
)

// TestAgainstMiniServer runs the client against the embedded mini server:
// both TLS modes, resource binding, routing, IQs, a room and a clean close.
func TestAgainstMiniServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := miniserver.Start(ctx, miniserver.Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		TLSAddr:  "127.0.0.1:0",
		Accounts: map[string]string{"alice": "alicepw", "bob": "bobpw"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("miniserver.Start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })

	dial := func(t *testing.T, user, res, mode string) *Client {
		addr := srv.Addr()
		if mode == "direct" {
			addr = srv.TLSAddr()
		}
		return Dial(t, Options{Addr: addr, JID: user + "@localhost", Password: user + "pw",
			Resource: res, TLS: mode, RootCAs: srv.CertPool(), Timeout: 10 * time.Second})
	}

	for _, mode := range []string{"starttls", "direct"} {
		t.Run("login-"+mode, func(t *testing.T) {
			c := dial(t, "alice", "m-"+mode, mode)
			if got, want := c.JID().String(), "alice@localhost/m-"+mode; got != want {
				t.Errorf("JID() = %q, want %q", got, want)
			}
			ictx, icancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer icancel()
			if res, err := c.IQ(ictx, "localhost", "get", "<ping xmlns='urn:xmpp:ping'/>"); err != nil || res.Type != "result" {
				t.Errorf("ping the server: %v %s", err, res.Raw)
			}
		})
	}

	t.Run("wrong-password", func(t *testing.T) {
		c, err := Connect(context.Background(), Options{Addr: srv.Addr(), JID: "alice@localhost",
			Password: "nope", RootCAs: srv.CertPool(), Timeout: 10 * time.Second})
		if err == nil {
			c.Close()
			t.Fatal("log-in with a wrong password succeeded")
		}
	})

	t.Run("chat-room-iq", func(t *testing.T) {
		alice := dial(t, "alice", "a", "starttls")
		bob := dial(t, "bob", "b", "starttls")
		if err := alice.SendMessage(bob.JID().String(), "chat", "hi <bob>"); err != nil {
			t.Fatal(err)
		}
		got := bob.Expect(t, 10*time.Second, func(s Stanza) bool { return s.Name == "message" && s.Type == "chat" })
		if got.Body != "hi <bob>" || got.From != alice.JID().String() {
			t.Errorf("chat = %s", got.Raw)
		}
		ictx, icancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer icancel()
		if res, err := alice.IQ(ictx, bob.JID().String(), "get", "<ping xmlns='urn:xmpp:ping'/>"); err != nil || res.Type != "result" {
			t.Errorf("alice pings bob: %v %s", err, res.Raw)
		}

		room := "lobby@conference.localhost"
		if err := alice.Join(room, "alice"); err != nil {
			t.Fatalf("alice joins: %v", err)
		}
		if err := bob.Join(room, "bob"); err != nil {
			t.Fatalf("bob joins: %v", err)
		}
		alice.Expect(t, 10*time.Second, func(s Stanza) bool { return s.Name == "presence" && s.From == room+"/bob" })
		if err := bob.SendMessage(room, "groupchat", "hello room"); err != nil {
			t.Fatal(err)
		}
		m := alice.Expect(t, 10*time.Second, func(s Stanza) bool { return s.Type == "groupchat" && s.Body != "" })
		if m.From != room+"/bob" || m.Body != "hello room" {
			t.Errorf("groupchat = %s", m.Raw)
		}
		if err := bob.Leave(room); err != nil {
			t.Errorf("bob leaves: %v", err)
		}
		alice.Close()
		if _, err := alice.IQ(ictx, "localhost", "get", "<ping xmlns='urn:xmpp:ping'/>"); !errors.Is(err, ErrClosed) {
			t.Errorf("IQ after Close = %v, want ErrClosed", err)
		}
	})
}
