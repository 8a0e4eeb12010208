package bot

import (
	"context"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

func TestSendOnce(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, "")
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: srv.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: srv.CertPool()})
	if err := alice.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := Options{RootCAs: srv.CertPool()}

	if err := SendOnce(ctx, cfg, opts, OneShot{To: "alice@localhost", Type: "headline", Subject: "disk", Body: "95% <full>"}); err != nil {
		t.Fatal(err)
	}
	got := alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool { return s.Name == "message" && s.Type == "headline" })
	if got.Body != "95% <full>" {
		t.Fatalf("body %q", got.Body)
	}
	if err := SendOnce(ctx, cfg, opts, OneShot{To: room, Type: "groupchat", Body: "to the room"}); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool { return s.Type == "groupchat" && s.Body == "to the room" })

	// A recipient the server cannot reach: the error answer arrives before
	// the acknowledgement, and SendOnce reports it.
	if err := SendOnce(ctx, cfg, opts, OneShot{To: "bob@elsewhere.example", Type: "chat", Body: "x"}); err == nil {
		t.Fatal("no error for an unreachable recipient")
	}
	bad := botConfig(t, srv, "")
	bad.XMPP.Password = "wrong"
	if err := SendOnce(ctx, bad, opts, OneShot{To: "alice@localhost", Type: "chat", Body: "x"}); err == nil {
		t.Fatal("no error with a wrong password")
	}
}
