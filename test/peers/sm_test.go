//go:build peers

package peers_test

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"crier/internal/peers"
	"crier/internal/xmpptest"
	"crier/transport"
)

// TestStreamManagement connects with transport.Connect to each peer, over
// TCP and BOSH, and checks that stream management is enabled and that
// Barrier returns once the server has acknowledged a burst, which the
// receiver then gets in full.
func TestStreamManagement(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			sender := p.Account(t, "user5")
			receiver := p.Account(t, "user4")
			for _, tr := range []string{transport.TransportTCP, transport.TransportBOSH} {
				t.Run(tr, func(t *testing.T) {
					rcv := xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: receiver.JID, Password: receiver.Password,
						Resource: fmt.Sprintf("sm-%s-%d", tr, time.Now().UnixNano()), RootCAs: p.CertPool()})
					o := transport.Options{
						JID:       jid.MustParse(sender.JID),
						Password:  sender.Password,
						Resource:  fmt.Sprintf("sm-%s-%d", tr, time.Now().UnixNano()),
						Transport: tr,
						Address:   p.C2S,
						Timeout:   20 * time.Second,
					}
					o.TLSConfig = &tls.Config{RootCAs: p.CertPool()}
					if tr == transport.TransportBOSH {
						o.Address, o.BOSHURL = "", p.BOSHURL
					}
					c, err := transport.Connect(context.Background(), o)
					if err != nil {
						t.Fatalf("Connect: %v", err)
					}
					defer c.Close()
					served := make(chan error, 1)
					go func() { served <- c.Session.Serve(nil) }()

					// The iq result of a ping is consumed by mellium; it
					// still has to count, or the server would see a wrong h.
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					if err := ping.Send(ctx, c.Session, c.JID.Domain()); err != nil {
						t.Fatalf("ping: %v", err)
					}
					const n = 50
					prefix := fmt.Sprintf("sm-%s-%s-%d-", name, tr, time.Now().UnixNano())
					for i := range n {
						msg := stanza.Message{To: rcv.JID(), Type: stanza.ChatMessage}
						body := xmlstream.Wrap(xmlstream.Token(xml.CharData(fmt.Sprintf("%s%d", prefix, i))),
							xml.StartElement{Name: xml.Name{Local: "body"}})
						if err := c.Session.Send(ctx, msg.Wrap(body)); err != nil {
							t.Fatal(err)
						}
					}
					bctx, bcancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer bcancel()
					if err := c.Barrier(bctx); err != nil {
						t.Fatalf("Barrier: %v", err)
					}
					st := c.SMStats()
					t.Logf("stream management on %s over %s: %+v", name, tr, st)
					// One ping, n messages: everything sent since <enable/>.
					if !c.SM() || st.Sent != n+1 || st.Acked != st.Sent || st.Handled < 1 {
						t.Fatalf("after Barrier: SM=%v %+v, want %d sent and acknowledged", c.SM(), st, n+1)
					}
					seen := make(map[string]bool)
					for range 2 * n {
						if len(seen) == n {
							break
						}
						m, err := rcv.Wait(context.Background(), 0, 10*time.Second, func(s xmpptest.Stanza) bool {
							return s.Name == "message" && strings.HasPrefix(s.Body, prefix)
						})
						if err != nil {
							t.Fatalf("receiver has %d of %d messages: %v", len(seen), n, err)
						}
						seen[m.Body] = true
					}
					if len(seen) != n {
						t.Fatalf("receiver has %d of %d messages", len(seen), n)
					}
					select {
					case err := <-served:
						t.Fatalf("session ended: %v\n%s", err, p.LogTail(20))
					default:
					}
				})
			}
		})
	}
}
