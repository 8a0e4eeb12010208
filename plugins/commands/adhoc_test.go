package commands

import (
	"encoding/xml"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"crier/plugins"
)

const (
	adminPhone = admin + "/phone"
	evePhone   = stranger + "/phone"
)

// TestDisco: the commands feature, the per-requester list, and each
// command node's identity.
func TestDisco(t *testing.T) {
	f := newFixture(t, nil)
	if !slices.Contains(f.h.Features(), nsCommands) {
		t.Errorf("features %q lack %s", f.h.Features(), nsCommands)
	}
	ids, feats, ok := f.h.DiscoInfo(evePhone, nsCommands)
	if !ok || len(ids) != 1 || ids[0] != [3]string{"automation", "command-list", "Commands"} || !slices.Contains(feats, nsCommands) {
		t.Errorf("commands node info %v %v %v", ids, feats, ok)
	}
	nodes := func(from string) []string {
		items, ok := f.h.DiscoItems(from, nsCommands)
		if !ok {
			t.Fatal("no disco items on the commands node")
		}
		var out []string
		for _, it := range items {
			if it.JID != "" || it.Name == "" {
				t.Errorf("item %+v: want an empty JID (the bot) and a name", it)
			}
			out = append(out, it.Node)
		}
		return out
	}
	if got := nodes(evePhone); !slices.Equal(got, []string{"help", "version", "uptime", "status", "rooms"}) {
		t.Errorf("stranger sees %q", got)
	}
	if got := nodes(adminPhone); !slices.Contains(got, "join") || !slices.Contains(got, "acl") || len(got) != len(f.p.builtins) {
		t.Errorf("admin sees %q", got)
	}
	ids, feats, ok = f.h.DiscoInfo(evePhone, "join")
	if !ok || ids[0] != [3]string{"automation", "command-node", "join a room and stay there across restarts"} ||
		!slices.Equal(feats, []string{nsCommands, nsData}) {
		t.Errorf("join node info %v %v %v", ids, feats, ok)
	}
	// A command added by another plugin later gets its node once listed.
	f.h.SetCommands(append(f.p.Commands(), plugins.Command{Name: "late", Summary: "a later plugin's", Run: typedCmd.Run}))
	if _, _, ok := f.h.DiscoInfo(evePhone, "late"); ok {
		t.Fatal("late node answered before it was listed")
	}
	if got := nodes(evePhone); !slices.Contains(got, "late") {
		t.Errorf("late command not listed: %q", got)
	}
	if _, _, ok := f.h.DiscoInfo(evePhone, "late"); !ok {
		t.Error("late node not registered after listing")
	}
}

// TestAdHocSingleStage: join as an admin, with its generated form.
func TestAdHocSingleStage(t *testing.T) {
	f := newFixture(t, nil)
	r := f.mustAdhoc(adminPhone, xCommand{Node: "join", Action: "execute"})
	if r.Status != "executing" || r.SessionID == "" || r.Actions == nil || r.Actions.Execute != "complete" || r.Actions.Complete == nil || r.Actions.Next != nil {
		t.Fatalf("first answer %+v", r)
	}
	if fieldVars(r.Form) != "room:jid-single,nick:text-single" || r.Form.Fields[0].Required == nil || r.Form.Fields[1].Required != nil {
		t.Fatalf("form %s", fieldVars(r.Form))
	}
	r = f.mustAdhoc(adminPhone, xCommand{Node: "join", SessionID: r.SessionID, Action: "complete", Form: submit("room", ops, "nick", "bot2")})
	if r.Status != "completed" || !strings.Contains(notes(r), "info: joining "+ops+" as bot2") {
		t.Fatalf("completed %+v %s", r, notes(r))
	}
	if !slices.Equal(f.h.Joins(), []string{ops + "/bot2"}) {
		t.Errorf("joins %v", f.h.Joins())
	}
	if f.total("join", "adhoc", resultOK) != 1 || f.p.sessions.len() != 0 {
		t.Errorf("metric %v, sessions %d", f.total("join", "adhoc", resultOK), f.p.sessions.len())
	}
	audit := f.h.Store.Keys(auditPrefix)
	if len(audit) != 1 {
		t.Fatalf("audit %q", audit)
	}
	if v, _ := f.h.Store.Get(audit[0]); !strings.Contains(string(v), `"where":"adhoc","surface":"adhoc","command":"join"`) {
		t.Errorf("audit %s", v)
	}
	// A command without arguments completes at once; a table is a result form.
	r = f.mustAdhoc(evePhone, xCommand{Node: "rooms"})
	if r.Status != "completed" || r.Form == nil || r.Form.Type != "result" || r.Form.Reported == nil || len(r.Form.Items) != 2 {
		t.Fatalf("rooms %+v", r)
	}
	if v := r.Form.Items[0].Fields[0].Values; len(v) != 1 || v[0] != lobby {
		t.Errorf("rooms first item %v", v)
	}
	// A one-shot submission with the first request works too.
	r = f.mustAdhoc(adminPhone, xCommand{Node: "say", Form: submit("to", "bob@example.org", "body", "hi")})
	if r.Status != "completed" || !strings.Contains(notes(r), "queued chat to bob@example.org") {
		t.Errorf("one-shot say %s", notes(r))
	}
}

// TestAdHocMultiStage: say in two stages, with prev, next and complete.
func TestAdHocMultiStage(t *testing.T) {
	f := newFixture(t, nil)
	r := f.mustAdhoc(adminPhone, xCommand{Node: "say"})
	sid := r.SessionID
	if fieldVars(r.Form) != "to:jid-single,type:list-single" || r.Actions.Execute != "next" || r.Actions.Prev != nil || r.Actions.Next == nil {
		t.Fatalf("stage 1 %s %+v", fieldVars(r.Form), r.Actions)
	}
	if len(r.Form.Fields[1].Options) != 5 || r.Form.Fields[1].Values[0] != "auto" {
		t.Errorf("type options %+v", r.Form.Fields[1])
	}
	r = f.mustAdhoc(adminPhone, xCommand{Node: "say", SessionID: sid, Action: "next", Form: submit("to", lobby, "type", "auto")})
	if fieldVars(r.Form) != "body:text-multi" || r.Actions.Prev == nil || r.Actions.Complete == nil || r.Actions.Execute != "complete" {
		t.Fatalf("stage 2 %s %+v", fieldVars(r.Form), r.Actions)
	}
	r = f.mustAdhoc(adminPhone, xCommand{Node: "say", SessionID: sid, Action: "prev"})
	if fieldVars(r.Form) != "to:jid-single,type:list-single" || r.Form.Fields[0].Values[0] != lobby {
		t.Fatalf("prev: %s %+v", fieldVars(r.Form), r.Form.Fields[0])
	}
	// execute is the stage's default action: next here.
	r = f.mustAdhoc(adminPhone, xCommand{Node: "say", SessionID: sid, Action: "execute", Form: submit("to", lobby)})
	if fieldVars(r.Form) != "body:text-multi" {
		t.Fatalf("execute on stage 1: %s", fieldVars(r.Form))
	}
	_, ie := f.adhoc(adminPhone, xCommand{Node: "say", SessionID: sid, Action: "next", Form: submit("body", "x")})
	expectIQError(t, ie, "bad-request", "bad-action")
	body := &xForm{Type: "submit", Fields: []xField{{Var: "body", Values: []string{"line one", "line two"}}}}
	r = f.mustAdhoc(adminPhone, xCommand{Node: "say", SessionID: sid, Action: "complete", Form: body})
	if r.Status != "completed" || !strings.Contains(notes(r), "queued groupchat to "+lobby) {
		t.Fatalf("complete %s", notes(r))
	}
	sent := f.h.Sent()
	if len(sent) != 1 || sent[0].To != lobby || sent[0].Type != "groupchat" || sent[0].Body != "line one\nline two" {
		t.Errorf("sent %+v", sent)
	}
	_, ie = f.adhoc(adminPhone, xCommand{Node: "say", SessionID: sid, Action: "prev"})
	expectIQError(t, ie, "bad-request", "bad-sessionid")
}

// TestAdHocSessions: cancel, timeout, another JID, unknown node and
// action, forbidden.
func TestAdHocSessions(t *testing.T) {
	f := newFixture(t, nil)
	r := f.mustAdhoc(adminPhone, xCommand{Node: "join"})
	r = f.mustAdhoc(adminPhone, xCommand{Node: "join", SessionID: r.SessionID, Action: "cancel"})
	if r.Status != "canceled" || f.p.sessions.len() != 0 || f.total("join", "adhoc", resultCanceled) != 1 {
		t.Fatalf("cancel %+v, %d sessions", r, f.p.sessions.len())
	}
	_, ie := f.adhoc(adminPhone, xCommand{Node: "join", SessionID: r.SessionID, Action: "complete", Form: submit("room", ops)})
	expectIQError(t, ie, "bad-request", "bad-sessionid")

	// Another JID (even another resource of the same user) cannot use it.
	r = f.mustAdhoc(adminPhone, xCommand{Node: "join"})
	before := f.rejected(reasonBadSession)
	for _, other := range []string{evePhone, admin + "/laptop"} {
		_, ie = f.adhoc(other, xCommand{Node: "join", SessionID: r.SessionID, Action: "complete", Form: submit("room", ops)})
		expectIQError(t, ie, "bad-request", "bad-sessionid")
	}
	if len(f.h.Joins()) != 0 || f.rejected(reasonBadSession) != before+2 {
		t.Fatalf("joins %v, bad_session %v", f.h.Joins(), f.rejected(reasonBadSession))
	}
	// Idle past session_timeout: expired.
	f.clk.Advance(5*time.Minute + time.Second)
	_, ie = f.adhoc(adminPhone, xCommand{Node: "join", SessionID: r.SessionID, Action: "complete", Form: submit("room", ops)})
	expectIQError(t, ie, "not-allowed", "session-expired")
	if f.rejected(reasonExpired) != 1 || len(f.h.Joins()) != 0 {
		t.Error("expiry not counted, or the command ran")
	}
	// Activity keeps a session alive.
	r = f.mustAdhoc(adminPhone, xCommand{Node: "say"})
	f.clk.Advance(4 * time.Minute)
	r = f.mustAdhoc(adminPhone, xCommand{Node: "say", SessionID: r.SessionID, Action: "next", Form: submit("to", "bob@example.org")})
	f.clk.Advance(4 * time.Minute)
	f.mustAdhoc(adminPhone, xCommand{Node: "say", SessionID: r.SessionID, Action: "complete", Form: submit("body", "still here")})

	_, ie = f.adhoc(adminPhone, xCommand{Node: "nosuch"})
	expectIQError(t, ie, "item-not-found", "")
	_, ie = f.adhoc(adminPhone, xCommand{Node: "join", Action: "jump"})
	expectIQError(t, ie, "bad-request", "malformed-action")
	_, ie = f.adhoc(adminPhone, xCommand{Node: "join", Action: "next"})
	expectIQError(t, ie, "bad-request", "bad-sessionid")
	// The Host hands the child over as it came; a broken one is refused.
	_, err := f.p.handleIQ(t.Context(), plugins.IQ{From: adminPhone, Type: "set", Name: cmdName,
		Payload: []byte(`<command xmlns="http://jabber.org/protocol/commands" node="join"><x xmlns="jabber:x:data"></command>`)})
	if err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("malformed XML: %v", err)
	}

	// A stranger: forbidden, with the missing right named.
	_, ie = f.adhoc(evePhone, xCommand{Node: "join"})
	expectIQError(t, ie, "forbidden", "")
	if ie.Type != "auth" || ie.Text != "!join needs the admin right (bot-wide); you have anyone" ||
		!strings.Contains(string(ie.Payload), `<note type="error">!join needs the admin right`) {
		t.Errorf("forbidden %+v", ie)
	}
	// Through a room: the room's view of the occupant counts, not the bare JID.
	f.h.AddOccupant(plugins.Occupant{Room: lobby, Nick: "boss", RealJID: admin})
	f.h.AddOccupant(plugins.Occupant{Room: lobby, Nick: "anon"})
	if _, ie := f.adhoc(lobby+"/boss", xCommand{Node: "join"}); ie != nil {
		t.Errorf("admin through the room: %v", ie)
	}
	_, ie = f.adhoc(lobby+"/anon", xCommand{Node: "join"})
	expectIQError(t, ie, "forbidden", "")
}

// TestAdHocForms: missing, extra and invalid fields.
func TestAdHocForms(t *testing.T) {
	f := newFixture(t, nil)
	start := func() string { return f.mustAdhoc(adminPhone, xCommand{Node: "join"}).SessionID }
	sid := start()
	cases := []struct {
		form         *xForm
		cond, app    string
		note, reason string
	}{
		{submit("nick", "x"), "not-acceptable", "", "missing required field room", reasonBadArgs},
		{submit("room", "not@@jid"), "not-acceptable", "", `room: "not@@jid" is not a JID`, reasonBadArgs},
		{submit("room", ops, "colour", "red"), "bad-request", "bad-payload", `unknown field "colour"`, reasonBadForm},
		{submit("room", ops, "room", ops), "bad-request", "bad-payload", `field "room" is given twice`, reasonBadForm},
		{&xForm{Type: "result"}, "bad-request", "bad-payload", `the form's type is "result"`, reasonBadForm},
		{&xForm{Type: "submit", Fields: []xField{{Var: "room", Values: []string{ops, lobby}}}}, "bad-request", "bad-payload", "has 2 values", reasonBadForm},
		{submit("room", ops, "nick", strings.Repeat("n", 1025)), "not-acceptable", "", "nick is 1025 bytes; the limit is 1024", reasonTooBig},
		{nil, "not-acceptable", "", "missing required field room", reasonBadArgs},
	}
	for _, tc := range cases {
		before := f.rejected(tc.reason)
		_, ie := f.adhoc(adminPhone, xCommand{Node: "join", SessionID: sid, Action: "complete", Form: tc.form})
		expectIQError(t, ie, tc.cond, tc.app)
		if !strings.Contains(ie.Text, tc.note) || !strings.Contains(string(ie.Payload), `<note type="error">`) {
			t.Errorf("%s: text %q payload %s", tc.note, ie.Text, ie.Payload)
		}
		if f.rejected(tc.reason) != before+1 {
			t.Errorf("%s: %s not counted", tc.note, tc.reason)
		}
	}
	// The session survives a refused form: a corrected one completes it.
	r := f.mustAdhoc(adminPhone, xCommand{Node: "join", SessionID: sid, Action: "complete", Form: submit("room", ops)})
	if r.Status != "completed" || len(f.h.Joins()) != 1 {
		t.Fatalf("corrected form %s", notes(r))
	}
	// FORM_TYPE is allowed.
	sid = start()
	if r := f.mustAdhoc(adminPhone, xCommand{Node: "join", SessionID: sid, Action: "complete", Form: submit("FORM_TYPE", "x", "room", lobby)}); r.Status != "completed" {
		t.Errorf("with FORM_TYPE: %+v", r)
	}
	// A huge request is refused before it is parsed.
	_, err := f.h.IQ(t.Context(), "set", adminPhone, []byte(`<command xmlns="http://jabber.org/protocol/commands" node="join">`+strings.Repeat(" ", maxPayloadBytes)+`</command>`))
	if err == nil || !strings.Contains(err.Error(), "the limit is") {
		t.Errorf("huge request: %v", err)
	}
}

// TestAdHocConfirm: a destructive command shows the confirm box; without
// confirm=true it comes back with a warn note.
func TestAdHocConfirm(t *testing.T) {
	f := newFixture(t, nil)
	r := f.mustAdhoc(adminPhone, xCommand{Node: "leave"})
	if fieldVars(r.Form) != "room:jid-single,confirm:boolean" || r.Form.Fields[1].Values[0] != "false" {
		t.Fatalf("leave form %s", fieldVars(r.Form))
	}
	sid := r.SessionID
	r = f.mustAdhoc(adminPhone, xCommand{Node: "leave", SessionID: sid, Action: "complete", Form: submit("room", lobby)})
	if r.Status != "executing" || notes(r) != "warn: this will leave "+lobby+" — check confirm to run it" || len(f.h.Leaves()) != 0 {
		t.Fatalf("without confirm: %+v %s", r, notes(r))
	}
	if r.Form.Fields[0].Values[0] != lobby {
		t.Errorf("the form again lost the room: %+v", r.Form.Fields[0])
	}
	r = f.mustAdhoc(adminPhone, xCommand{Node: "leave", SessionID: sid, Action: "complete", Form: submit("room", lobby, "confirm", "1")})
	if r.Status != "completed" || notes(r) != "info: left "+lobby || !slices.Equal(f.h.Leaves(), []string{lobby}) {
		t.Fatalf("with confirm: %s, %v", notes(r), f.h.Leaves())
	}
	// reload shows its difference in the first form.
	r = f.mustAdhoc(adminPhone, xCommand{Node: "reload"})
	if fieldVars(r.Form) != "confirm:boolean" || !strings.Contains(notes(r), "warn: reload would change:\nrules: + greet") {
		t.Fatalf("reload form %s %s", fieldVars(r.Form), notes(r))
	}
	r = f.mustAdhoc(adminPhone, xCommand{Node: "reload", SessionID: r.SessionID, Action: "complete", Form: submit("confirm", "true")})
	if notes(r) != "info: reloaded" || f.h.Reloads() != 1 {
		t.Errorf("reload %s", notes(r))
	}
	// acl list is not destructive: no confirmation asked.
	r = f.mustAdhoc(adminPhone, xCommand{Node: "acl", Form: submit("action", "list")})
	if r.Status != "completed" || r.Form == nil || r.Form.Type != "result" {
		t.Errorf("acl list %+v", r)
	}
	// A bad confirm value.
	r = f.mustAdhoc(adminPhone, xCommand{Node: "leave"})
	_, ie := f.adhoc(adminPhone, xCommand{Node: "leave", SessionID: r.SessionID, Action: "complete", Form: submit("room", lobby, "confirm", "perhaps")})
	expectIQError(t, ie, "not-acceptable", "")
}

// TestAdHocRateLimit: a flood of session starts is refused with
// resource-constraint.
func TestAdHocRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Rate = Rate{N: 2, Per: time.Minute} })
	f.mustAdhoc(evePhone, xCommand{Node: "version"})
	f.mustAdhoc(evePhone, xCommand{Node: "version"})
	_, ie := f.adhoc(evePhone, xCommand{Node: "version"})
	expectIQError(t, ie, "resource-constraint", "")
	if ie.Type != "wait" || f.rejected(reasonRateLimited) != 1 {
		t.Errorf("rate limit %+v, counted %v", ie, f.rejected(reasonRateLimited))
	}
}

// TestAdHocSessionsBounded: one JID cannot open sessions without bound.
func TestAdHocSessionsBounded(t *testing.T) {
	f := newFixture(t, nil)
	for range maxSessionsPerJID {
		f.mustAdhoc(adminPhone, xCommand{Node: "join"})
	}
	_, ie := f.adhoc(adminPhone, xCommand{Node: "join"})
	expectIQError(t, ie, "resource-constraint", "")
	// Expired ones make room again.
	f.clk.Advance(6 * time.Minute)
	f.mustAdhoc(adminPhone, xCommand{Node: "join"})
}

// TestAdHocOtherPlugin: another plugin's command gets a generated form
// with its typed fields, checked like the chat arguments.
func TestAdHocOtherPlugin(t *testing.T) {
	f := newFixture(t, nil, typedCmd)
	r := f.mustAdhoc(evePhone, xCommand{Node: "typed"})
	if got := fieldVars(r.Form); got != "n:text-single,d:text-single,b:boolean,l:list-single,j:jid-single,rest:text-multi" {
		t.Fatalf("typed form %s", got)
	}
	if r.Form.Fields[0].Desc != "(a whole number)" || r.Form.Fields[1].Desc != "(a duration such as 10m or 2h)" {
		t.Errorf("descs %q %q", r.Form.Fields[0].Desc, r.Form.Fields[1].Desc)
	}
	_, ie := f.adhoc(evePhone, xCommand{Node: "typed", SessionID: r.SessionID, Action: "complete", Form: submit("n", "many")})
	expectIQError(t, ie, "not-acceptable", "")
	if ie.Text != `n: "many" is not a whole number` {
		t.Errorf("text %q", ie.Text)
	}
	r = f.mustAdhoc(evePhone, xCommand{Node: "typed", SessionID: r.SessionID, Action: "complete", Form: submit("n", "7", "b", "1")})
	if notes(r) != "info: n=7 b=true" {
		t.Errorf("typed result %s", notes(r))
	}
	// And in chat, and in help.
	if got := f.chat1(dm(stranger, "!typed 7 1m yes")); got != "n=7 b=true" {
		t.Errorf("chat typed %q", got)
	}
	f.clk.Advance(time.Minute)
	if got := f.chat1(dm(stranger, "!help")); !strings.Contains(got, "!typed N [D] [B] [red|green] [J] [REST...] — test every argument kind") {
		t.Errorf("help lacks typed:\n%s", got)
	}
}

// TestIQErrorElement: the error element the Host sends is well-formed,
// mellium reads its condition and text back, and it carries the XEP-0050
// condition.
func TestIQErrorElement(t *testing.T) {
	e := cmdError("modify", "bad-request", "bad-sessionid", `the session <belongs> to "another" JID`)
	el := e.Element()
	var se stanza.Error
	if err := xml.Unmarshal(el, &se); err != nil {
		t.Fatalf("%s: %v", el, err)
	}
	if se.Type != stanza.Modify || se.Condition != stanza.BadRequest || se.Text[""] != `the session <belongs> to "another" JID` {
		t.Errorf("decoded %+v from %s", se, el)
	}
	if !strings.Contains(string(el), `<bad-sessionid xmlns="http://jabber.org/protocol/commands"/></error>`) {
		t.Errorf("no application condition in %s", el)
	}
	if e.Error() != `bad-request: the session <belongs> to "another" JID` {
		t.Errorf("Error() = %q", e.Error())
	}
}
