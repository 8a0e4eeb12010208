//go:build browser

package browser_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"crier/examples/webchat"
	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// TestProsodyWebChat serves the web chat from a local HTTP server of its own
// and points it at Prosody's BOSH endpoint on another origin, so the page
// only works if Prosody answers the CORS preflight. It logs in as alice,
// joins a fresh room, sees its own message echoed by the room, and sees a
// message and a headline from the bot's account styled as the bot's.
func TestProsodyWebChat(t *testing.T) {
	p := peers.Get(t, "prosody")
	if p.BOSHURL == "" {
		t.Fatalf("prosody's env file %s/env has no BOSH_URL", p.Dir)
	}
	alice := p.Account(t, "alice")
	crier := p.Account(t, "crier")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of the Prosody log:\n%s", p.LogTail(40))
		}
	})

	web := httptest.NewServer(http.FileServer(http.FS(webchat.FS)))
	t.Cleanup(web.Close)
	room := fmt.Sprintf("webchat%d@%s", time.Now().UnixNano(), p.MUC)
	q := url.Values{"debug": {"1"}, "bosh": {p.BOSHURL}, "room": {room}, "botjid": {crier.JID}}
	pg := openPage(t, web.URL+"/?"+q.Encode())

	if got := eval[string](pg, `document.getElementById('bosh-url').value`); got != p.BOSHURL {
		t.Fatalf("the page took the BOSH URL %q from its query, want %q", got, p.BOSHURL)
	}
	pg.login(alice.JID, alice.Password, p.BOSHURL)
	pg.join(room, "alice")

	pg.send("room", "hello from a browser <b>not bold</b>")
	pg.waitLine(1, "li.msg-groupchat.msg-self", "alice", "hello from a browser <b>not bold</b>")
	if n := eval[int](pg, `document.querySelectorAll('#messages b').length`); n != 0 {
		t.Errorf("a message body created %d <b> element(s)", n)
	}

	// The bot's account joins under the bot's nick and speaks.
	bot := xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: crier.JID, Password: crier.Password,
		RootCAs: p.CertPool(), Timeout: 10 * time.Second})
	if err := bot.Join(room, "crier"); err != nil {
		t.Fatalf("the bot's account joining %s: %v", room, err)
	}
	pg.waitFor(`document.getElementById('room-state').textContent.includes('crier')`, "the bot in the room's occupant list")
	if err := bot.SendMessage(room, "groupchat", "pong alice"); err != nil {
		t.Fatalf("the bot's account sending to the room: %v", err)
	}
	pg.waitLine(1, "li.msg-groupchat.msg-bot", "crier", "pong alice")

	// A headline to alice's bare JID reaches her available resource.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bot.Send(ctx, `<message to='`+alice.JID+`' type='headline'>`+
		`<subject>Build failed</subject><body>main is red</body></message>`); err != nil {
		t.Fatalf("sending a headline: %v", err)
	}
	pg.waitLine(1, "li.msg-headline.msg-bot", "crier", "main is red")
	if got := eval[string](pg, `document.querySelector('#messages li.msg-headline .msg-subject').textContent`); got != "Build failed" {
		t.Errorf("headline subject = %q, want %q", got, "Build failed")
	}

	// Disconnect ends the BOSH session cleanly and does not reconnect.
	pg.do("pressing Disconnect", chromedpClick("#disconnect"))
	pg.waitFor(`document.getElementById('status').dataset.state === 'disconnected'`, "the page to disconnect")
	time.Sleep(1500 * time.Millisecond) // longer than the first reconnect delay could be
	if st := eval[string](pg, `document.getElementById('status').dataset.state`); st != "disconnected" {
		t.Errorf("after Disconnect the page is %q, want it to stay disconnected", st)
	}
}
