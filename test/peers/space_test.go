//go:build peers

package peers_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/internal/peers"
	"crier/internal/xmpptest"
	"crier/transport"
)

// TestWhitespaceFromServer: crier signs in to Prosody through a proxy that
// writes whitespace after every top-level element Prosody sends (inside
// TLS, around STARTTLS, SASL and bind), with STARTTLS and direct TLS, and
// a message to itself comes back.
func TestWhitespaceFromServer(t *testing.T) {
	p := peers.Get(t, "prosody")
	me := p.Account(t, "user1")
	for _, mode := range []string{transport.TLSStartTLS, transport.TLSDirect} {
		t.Run(mode, func(t *testing.T) {
			up := p.C2S
			if mode == transport.TLSDirect {
				up = p.TLSDirect
			}
			proxy := xmpptest.StartSpaceProxy(t, xmpptest.SpaceProxyOptions{Upstream: up, TLS: mode,
				RootCAs: p.CertPool(), ServerName: p.Domain})
			var logs bytes.Buffer
			c, err := transport.Connect(context.Background(), transport.Options{
				JID:       jid.MustParse(me.JID),
				Password:  me.Password,
				Resource:  "space-" + mode,
				Address:   proxy.Addr(),
				TLS:       mode,
				TLSConfig: &tls.Config{RootCAs: proxy.CertPool()},
				Timeout:   20 * time.Second,
				Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatalf("Connect through the whitespace proxy: %v\n%s\n%s", err, logs.String(), p.LogTail(20))
			}
			defer c.Close()
			in := &bodies{}
			go func() { _ = c.Session.Serve(in) }()
			body := "through the whitespace proxy over " + mode
			msg := stanza.Message{To: c.JID, Type: stanza.ChatMessage}
			if err := c.Session.Send(context.Background(), msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}}))); err != nil {
				t.Fatal(err)
			}
			if got := in.wait(t, 1, 10*time.Second); got[0] != body {
				t.Fatalf("got %q, want %q", got, body)
			}
			if n := proxy.Inserted(); n < 6 {
				t.Fatalf("the proxy inserted whitespace only %d times", n)
			}
			if err := proxy.Err(); err != nil {
				t.Fatalf("proxy: %v", err)
			}
			if strings.Contains(logs.String(), "tap stopped") {
				t.Fatalf("the tap lost the stream:\n%s", logs.String())
			}
		})
	}
}
