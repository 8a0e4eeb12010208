package crierproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

// CommandsEnv is what the commands acceptance scenario needs of a server:
// the mini server in the fast suite, Prosody and ejabberd in the peers
// suite.
type CommandsEnv struct {
	// Domain is the users' domain; MUC the rooms' service.
	Domain, MUC string
	// XMPP is crier's [xmpp] table for the server.
	XMPP XMPP
	// Dial logs the account local ("alice", the admin, or "bob", a
	// stranger) in.
	Dial func(t *testing.T, local string) *xmpptest.Client
}

const nsCommands = "http://jabber.org/protocol/commands"

// RunCommandsScenario drives crier's commands end to end, as chat commands
// and as XEP-0050 ad-hoc commands: alice, an admin by [commands] admins,
// joins crier to rooms, makes it speak and leave; bob, a stranger, sees
// only the public commands and is refused the others; a room joined by
// command is back after a SIGKILL and a restart, and one left by command
// is not.
func RunCommandsScenario(t *testing.T, env CommandsEnv) {
	t.Helper()
	stateDir := t.TempDir()
	tables := fmt.Sprintf("[bot]\nstate_dir = %q\n\n[commands]\nadmins = [%q]\n", stateDir, "alice@"+env.Domain)
	d := Run(t, env.XMPP, tables)
	d.WaitReady(t, 30*time.Second)
	crier := env.XMPP.JID + "/" + env.XMPP.Resource
	alice := env.Dial(t, "alice")
	bob := env.Dial(t, "bob")
	roomA, roomB := uniqueRoom(env.MUC, "cmda"), uniqueRoom(env.MUC, "cmdb")
	for _, r := range []string{roomA, roomB} {
		if err := alice.Join(r, "alice"); err != nil {
			t.Fatalf("alice joins %s: %v", r, err)
		}
	}
	say := func(c *xmpptest.Client, body string) {
		t.Helper()
		if err := c.SendMessage(crier, "chat", body); err != nil {
			t.Fatal(err)
		}
	}
	replyContaining := func(c *xmpptest.Client, sub string) xmpptest.Stanza {
		t.Helper()
		return c.Expect(t, 15*time.Second, func(s xmpptest.Stanza) bool {
			return s.Name == "message" && strings.HasPrefix(s.From, env.XMPP.JID) && strings.Contains(s.Body, sub)
		})
	}
	presence := func(room, typ string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "presence" && s.From == room+"/crier" && s.Type == typ
		}
	}

	// Chat commands: join and say.
	say(alice, "!join "+roomA+" crier")
	replyContaining(alice, "joining "+roomA)
	alice.Expect(t, 15*time.Second, presence(roomA, ""))
	say(alice, "!say "+roomA+" hello from say")
	alice.Expect(t, 15*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.From == roomA+"/crier" && s.Body == "hello from say"
	})

	// The stranger: refused in chat, and sees only the public commands.
	say(bob, "!join "+roomB)
	refused := replyContaining(bob, "forbidden")
	if !strings.Contains(refused.Body, "admin") {
		t.Errorf("the refusal does not name the missing right: %q", refused.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	items := func(c *xmpptest.Client) []string {
		t.Helper()
		res, err := c.IQ(ctx, crier, "get", `<query xmlns="http://jabber.org/protocol/disco#items" node="`+nsCommands+`"/>`)
		if err != nil {
			t.Fatalf("disco#items on the commands node: %v", err)
		}
		var nodes []string
		for _, it := range res.Root.FindAll("http://jabber.org/protocol/disco#items", "item") {
			nodes = append(nodes, it.Attr("node"))
		}
		return nodes
	}
	bobNodes, aliceNodes := items(bob), items(alice)
	if !contains(bobNodes, "help") || contains(bobNodes, "join") || contains(bobNodes, "say") {
		t.Errorf("bob's ad-hoc command list: %v (want help, and neither join nor say)", bobNodes)
	}
	for _, want := range []string{"help", "join", "leave", "say"} {
		if !contains(aliceNodes, want) {
			t.Errorf("alice's ad-hoc command list lacks %s: %v", want, aliceNodes)
		}
	}
	if res, err := bob.IQ(ctx, crier, "set", execute("join", map[string]string{"room": roomB})); err == nil || !strings.Contains(res.Raw, "forbidden") {
		t.Errorf("bob executes join: %v %s, want forbidden", err, res.Raw)
	}

	// Ad-hoc: say and join in one step each (a filled form).
	if res, err := alice.IQ(ctx, crier, "set", execute("say", map[string]string{"to": roomA, "body": "hello from ad-hoc"})); err != nil || !strings.Contains(res.Raw, "completed") {
		t.Fatalf("alice executes say: %v %s", err, res.Raw)
	}
	alice.Expect(t, 15*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.From == roomA+"/crier" && s.Body == "hello from ad-hoc"
	})
	if res, err := alice.IQ(ctx, crier, "set", execute("join", map[string]string{"room": roomB, "nick": "crier"})); err != nil || !strings.Contains(res.Raw, "completed") {
		t.Fatalf("alice executes join: %v %s", err, res.Raw)
	}
	alice.Expect(t, 15*time.Second, presence(roomB, ""))

	// A crash: both rooms joined by command are back after the restart.
	// (The server may keep the killed session for resumption; the new
	// process's login replaces it, and it joins again.)
	d.Kill(t)
	d = Start(t, d.Path(), d.HTTPAddr())
	d.WaitReady(t, 30*time.Second)
	alice.Expect(t, 30*time.Second, presence(roomA, ""))
	alice.Expect(t, 30*time.Second, presence(roomB, ""))

	// Leave: ad-hoc with the confirm box, chat with !confirm.
	if res, err := alice.IQ(ctx, crier, "set", execute("leave", map[string]string{"room": roomB})); err != nil || strings.Contains(res.Raw, "completed") {
		t.Errorf("leave without confirm: %v %s, want the form again", err, res.Raw)
	}
	if res, err := alice.IQ(ctx, crier, "set", execute("leave", map[string]string{"room": roomB, "confirm": "true"})); err != nil || !strings.Contains(res.Raw, "completed") {
		t.Fatalf("alice executes leave: %v %s", err, res.Raw)
	}
	alice.Expect(t, 15*time.Second, presence(roomB, "unavailable"))
	say(alice, "!leave "+roomA)
	replyContaining(alice, "!confirm")
	say(alice, "!confirm")
	replyContaining(alice, "left "+roomA)
	alice.Expect(t, 15*time.Second, presence(roomA, "unavailable"))

	// Left by command, they stay left after a restart.
	if err := d.Stop(StopLimit); err != nil {
		t.Fatal(err)
	}
	d = Start(t, d.Path(), d.HTTPAddr())
	d.WaitReady(t, 30*time.Second)
	time.Sleep(2 * time.Second)
	for _, s := range alice.Drain() {
		if presence(roomA, "")(s) || presence(roomB, "")(s) {
			t.Errorf("a room left by command was joined again after a restart: %s", s.Raw)
		}
	}
}

// execute is an XEP-0050 execute request with a filled form.
func execute(node string, fields map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<command xmlns=%q node=%q action="execute"><x xmlns="jabber:x:data" type="submit">`, nsCommands, node)
	for k, v := range fields {
		fmt.Fprintf(&b, `<field var=%q><value>%s</value></field>`, k, xmpptest.Escape(v))
	}
	b.WriteString(`</x></command>`)
	return b.String()
}

func uniqueRoom(service, prefix string) string {
	var p [4]byte
	_, _ = rand.Read(p[:])
	return prefix + hex.EncodeToString(p[:]) + "@" + service
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
