package zeroloss

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// TestRelayFromComponent: crier as an XEP-0114 component of the mini
// server relays NATS events from the address its relay names; every
// event arrives, from that address.
func TestRelayFromComponent(t *testing.T) {
	srv, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain:        "localhost",
		Addr:          "127.0.0.1:0",
		ComponentAddr: "127.0.0.1:0",
		Components:    map[string]string{"alerts.localhost": "s3cret"},
		Accounts:      map[string]string{rcvJID: rcvPW},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, nc, _ := StartNATS(ctx, t)
	rcv := xmpptest.Dial(t, miniReceiver(srv, "from"))
	path, httpAddr := WriteConfig(t, Config{
		XMPP: XMPP{JID: "alerts.localhost", Password: "s3cret", Transport: "component",
			Address: srv.ComponentAddr(), TLS: "none"},
		NATSURL: ns.ClientURL(),
		Relays: []Relay{
			{Subject: "disk.>", To: []string{rcvJID}, Type: "chat", From: "disk@alerts.localhost"},
			{Subject: "ci.>", To: []string{rcvJID}, Type: "chat", From: "ci@alerts.localhost"},
		},
	})
	d := crierproc.Start(t, path, httpAddr)
	d.WaitReady(t, 30*time.Second)
	const n = 50
	for i := range n {
		for _, subj := range []string{"disk.full", "ci.done"} {
			if err := nc.Publish(subj, []byte(fmt.Sprintf("%s %d", subj, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = nc.Flush()
	for i := range n {
		for _, c := range []struct{ subj, from string }{{"disk.full", "disk@alerts.localhost"}, {"ci.done", "ci@alerts.localhost"}} {
			body := fmt.Sprintf("%s %d", c.subj, i)
			rcv.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
				return s.Name == "message" && s.Body == body && s.From == c.from
			})
		}
	}
}
