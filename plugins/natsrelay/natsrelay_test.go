package natsrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crier/plugins"
)

func TestCoreWildcardPlainText(t *testing.T) {
	srv := startNATS(t)
	nc, _ := connect(t, srv)
	bot := newFakeBot()
	startPlugin(t, loadConfig(t, srv.ClientURL(), `
[[nats.relay]]
subject = "builds.*.done"
to = ["alice@example.org"]
`), bot)
	for _, s := range []string{"builds.web.done", "builds.web.failed", "builds.api.done", "other.web.done"} {
		if err := nc.Publish(s, []byte("  "+s+" ok\n")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "two messages", func() bool { return len(bot.messages()) >= 2 })
	time.Sleep(100 * time.Millisecond) // nothing else may arrive
	got := bot.messages()
	want := "builds.web.done ok→alice@example.org(headline) | builds.api.done ok→alice@example.org(headline)"
	if bodies(got) != want {
		t.Fatalf("sent %s\nwant %s", bodies(got), want)
	}
	if got[0].OriginID == "" || got[0].OriginID == got[1].OriginID || got[0].Subject != "" {
		t.Errorf("origin ids %q %q, subject %q", got[0].OriginID, got[1].OriginID, got[0].Subject)
	}
	waitFor(t, 2*time.Second, "relayed metric", func() bool {
		return metricValue(t, bot.reg, "crier_nats_relayed_total", "relay", "builds.*.done") == 2
	})
}

func TestJSONTemplate(t *testing.T) {
	srv := startNATS(t)
	nc, _ := connect(t, srv)
	bot := newFakeBot()
	startPlugin(t, loadConfig(t, srv.ClientURL(), `
[[nats.relay]]
subject = "alerts.>"
to = ["ops@example.org"]
format = "json"
template = '[{{upper .Severity}}] {{.Title}}: {{.Body}} on {{index .Fields "host"}} ({{.NATSSubject}}) {{.URL}}'

[[nats.relay]]
subject = "plain.>"
to = ["ops@example.org"]
format = "json"
`), bot)
	pub := func(subject string, v any) {
		b, _ := json.Marshal(v)
		if err := nc.Publish(subject, b); err != nil {
			t.Fatal(err)
		}
	}
	pub("alerts.disk", map[string]any{"title": "Disk full", "body": "95% used", "severity": "critical", "host": "db1", "url": "https://x/1"})
	waitFor(t, 5*time.Second, "first", func() bool { return len(bot.messages()) == 1 })
	pub("alerts.cpu", map[string]any{"subject": "CPU", "text": "hot", "severity": "warn", "host": 7, "to": []string{"bob@example.org", "lobby@conference.example.org"}, "type": "normal"})
	waitFor(t, 5*time.Second, "three", func() bool { return len(bot.messages()) == 3 })
	pub("plain.x", map[string]any{"title": "Deployed", "body": "v1.2", "severity": "info", "url": "https://x/2"})
	waitFor(t, 5*time.Second, "four", func() bool { return len(bot.messages()) == 4 })
	got := bot.messages()
	if got[0].Body != "[CRITICAL] Disk full: 95% used on db1 (alerts.disk) https://x/1" || got[0].To != "ops@example.org" ||
		got[0].Type != "headline" || got[0].Subject != "Disk full" {
		t.Errorf("first = %+v", got[0])
	}
	// The payload's to and type replace the relay's, rooms included.
	if got[1].To != "bob@example.org" || got[2].To != "lobby@conference.example.org" ||
		got[1].Type != "normal" || got[2].Type != "normal" || got[1].Body != "[WARN] CPU: hot on 7 (alerts.cpu)" {
		t.Errorf("second = %+v / %+v", got[1], got[2])
	}
	if got[1].OriginID != got[2].OriginID && got[1].OriginID == "" {
		t.Errorf("origin ids %q %q", got[1].OriginID, got[2].OriginID)
	}
	if got[3].Body != "[INFO] Deployed\nv1.2\nhttps://x/2" {
		t.Errorf("default JSON rendering = %q", got[3].Body)
	}
}

func TestRoomsAndUsers(t *testing.T) {
	srv := startNATS(t)
	nc, _ := connect(t, srv)
	bot := newFakeBot()
	startPlugin(t, loadConfig(t, srv.ClientURL(), `
[[nats.relay]]
subject = "a"
to = ["user@example.org", "lobby@conference.example.org", "ops@muc.example.org", "joined@rooms.example.org"]
type = "chat"
rooms = ["ops@muc.example.org"]

[[nats.relay]]
subject = "b"
to = ["user@example.org", "lobby@conference.example.org"]

[[nats.relay]]
subject = "c"
to = ["team@chat.example.org"]
type = "groupchat"
`), bot)
	for _, s := range []string{"a", "b", "c"} {
		if err := nc.Publish(s, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // keep the order stable
	}
	waitFor(t, 5*time.Second, "seven messages", func() bool { return len(bot.messages()) == 7 })
	want := "a→user@example.org(chat) | a→lobby@conference.example.org(groupchat) | a→ops@muc.example.org(groupchat) | " +
		"a→joined@rooms.example.org(groupchat) | b→user@example.org(headline) | b→lobby@conference.example.org(groupchat) | " +
		"c→team@chat.example.org(groupchat)"
	if got := bodies(bot.messages()); got != want {
		t.Fatalf("sent %s\nwant %s", got, want)
	}
}

const jsRelay = `
[[nats.relay]]
subject = "ev.>"
to = ["ops@example.org"]
stream = "EV"
durable = "crier-ev"
nak_delay = "50ms"
`

func TestJetStreamAckAfterDone(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	bot := newFakeBot()
	bot.hold = true
	startPlugin(t, loadConfig(t, srv.ClientURL(), jsRelay), bot)
	jsPublish(t, js, "ev.one", "hello", "")
	waitFor(t, 5*time.Second, "sent", func() bool { return len(bot.messages()) == 1 })
	time.Sleep(200 * time.Millisecond)
	info := consumerInfo(t, js, "EV", "crier-ev")
	if info.NumAckPending != 1 || info.AckFloor.Stream != 0 {
		t.Fatalf("before done: ack pending %d, ack floor %d; want 1 and 0", info.NumAckPending, info.AckFloor.Stream)
	}
	if v := metricValue(t, bot.reg, "crier_nats_relay_unacked", "relay", "ev.>"); v != 1 {
		t.Errorf("unacked gauge = %v, want 1", v)
	}
	if n := bot.release(nil); n != 1 {
		t.Fatalf("released %d callbacks", n)
	}
	waitFor(t, 5*time.Second, "ack", func() bool {
		info := consumerInfo(t, js, "EV", "crier-ev")
		return info.NumAckPending == 0 && info.AckFloor.Stream == 1
	})
	if v := metricValue(t, bot.reg, "crier_nats_relay_unacked", "relay", "ev.>"); v != 0 {
		t.Errorf("unacked gauge = %v, want 0", v)
	}
	if v := metricValue(t, bot.reg, "crier_nats_relayed_total", "relay", "ev.>"); v != 1 {
		t.Errorf("relayed = %v, want 1", v)
	}
	if m := bot.messages()[0]; m.Body != "hello" || m.OriginID != originID("seq:EV:1") {
		t.Errorf("message = %+v", m)
	}
}

func TestJetStreamRedeliveryAfterFailure(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	bot := newFakeBot()
	// The first send to bob fails; alice's succeeds at once.
	bot.outcome = func(m plugins.Message, n int) error {
		if m.To == "bob@example.org" && n == 0 {
			return errLost
		}
		return nil
	}
	startPlugin(t, loadConfig(t, srv.ClientURL(), `
[[nats.relay]]
subject = "ev.>"
to = ["alice@example.org", "bob@example.org"]
stream = "EV"
nak_delay = "50ms"
`), bot)
	jsPublish(t, js, "ev.x", "retry me", "evt-1")
	waitFor(t, 5*time.Second, "redelivery", func() bool { return len(bot.messages()) == 3 })
	waitFor(t, 5*time.Second, "ack", func() bool {
		return consumerInfo(t, js, "EV", "crier_ev_all").NumAckPending == 0
	})
	time.Sleep(150 * time.Millisecond) // a third delivery would send again
	got := bot.messages()
	want := "retry me→alice@example.org(headline) | retry me→bob@example.org(headline) | retry me→bob@example.org(headline)"
	if bodies(got) != want {
		t.Fatalf("sent %s\nwant %s (alice must not get the redelivered copy)", bodies(got), want)
	}
	if got[1].OriginID != got[2].OriginID || got[1].OriginID != originID("id:evt-1") {
		t.Errorf("origin ids differ across redelivery: %q %q", got[1].OriginID, got[2].OriginID)
	}
	if v := metricValue(t, bot.reg, "crier_nats_relay_redeliveries_total", "relay", "ev.>"); v != 1 {
		t.Errorf("redeliveries = %v, want 1", v)
	}
}

// TestJetStreamSlowSendKeptInProgress: while the XMPP server is slow to
// acknowledge a stanza, the relay tells JetStream the message is in
// progress, so it is not redelivered (to this instance or another, which
// would send it twice); it is acked once the server has it.
func TestJetStreamSlowSendKeptInProgress(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	bot := newFakeBot()
	bot.hold = true
	startPlugin(t, loadConfig(t, srv.ClientURL(), jsRelay+`ack_wait = "300ms"`+"\n"), bot)
	jsPublish(t, js, "ev.slow", "slow", "")
	waitFor(t, 5*time.Second, "sent", func() bool { return len(bot.messages()) == 1 })
	time.Sleep(1500 * time.Millisecond) // five ack waits
	if v := metricValue(t, bot.reg, "crier_nats_relay_redeliveries_total", "relay", "ev.>"); v != 0 {
		t.Fatalf("redelivered %v times while the send was in flight", v)
	}
	if info := consumerInfo(t, js, "EV", "crier-ev"); info.NumRedelivered != 0 || info.NumAckPending != 1 {
		t.Fatalf("consumer: %d redelivered, %d pending, want 0 and 1", info.NumRedelivered, info.NumAckPending)
	}
	bot.release(nil)
	waitFor(t, 5*time.Second, "ack", func() bool {
		info := consumerInfo(t, js, "EV", "crier-ev")
		return info.NumAckPending == 0 && info.AckFloor.Stream == 1
	})
	time.Sleep(400 * time.Millisecond) // past another ack wait
	if n := len(bot.messages()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
}

func TestJetStreamSameMsgIDAckedWithoutSending(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A short duplicate window lets the same Nats-Msg-Id be stored twice.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}, Duplicates: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	bot := newFakeBot()
	startPlugin(t, loadConfig(t, srv.ClientURL(), jsRelay), bot)
	jsPublish(t, js, "ev.a", "once", "alert-42")
	waitFor(t, 5*time.Second, "first ack", func() bool { return consumerInfo(t, js, "EV", "crier-ev").AckFloor.Stream == 1 })
	time.Sleep(300 * time.Millisecond)
	if ack := jsPublish(t, js, "ev.a", "once", "alert-42"); ack.Sequence != 2 || ack.Duplicate {
		t.Fatalf("second copy not stored: %+v", ack)
	}
	waitFor(t, 5*time.Second, "second ack", func() bool { return consumerInfo(t, js, "EV", "crier-ev").AckFloor.Stream == 2 })
	if n := len(bot.messages()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
	if v := metricValue(t, bot.reg, "crier_nats_relay_duplicates_total", "relay", "ev.>"); v != 1 {
		t.Errorf("duplicates = %v, want 1", v)
	}
}

func TestCoreSameMsgIDSentOnce(t *testing.T) {
	srv := startNATS(t)
	nc, _ := connect(t, srv)
	bot := newFakeBot()
	startPlugin(t, loadConfig(t, srv.ClientURL(), `
[[nats.relay]]
subject = "n"
to = ["a@example.org"]
`), bot)
	for i := range 3 {
		m := &nats.Msg{Subject: "n", Data: []byte("x"), Header: nats.Header{}}
		m.Header.Set(nats.MsgIdHdr, "same")
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, 5*time.Second, "first", func() bool {
				return metricValue(t, bot.reg, "crier_nats_relayed_total", "relay", "n") == 1
			})
		}
	}
	waitFor(t, 5*time.Second, "duplicates", func() bool {
		return metricValue(t, bot.reg, "crier_nats_relay_duplicates_total", "relay", "n") == 2
	})
	if n := len(bot.messages()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
}

func TestDeadLetters(t *testing.T) {
	srv := startNATS(t)
	nc, js := connect(t, srv)
	dead, err := nc.SubscribeSync("dead.>")
	if err != nil {
		t.Fatal(err)
	}
	bot := newFakeBot()
	startPlugin(t, loadConfig(t, srv.ClientURL(), `
dead_letter = "dead.all"
[[nats.relay]]
subject = "ev.>"
to = ["ops@example.org"]
stream = "EV"
durable = "d"
format = "json"
max_bytes = 100
dead_letter = "dead.ev"

[[nats.relay]]
subject = "core.in"
to = ["ops@example.org"]
format = "json"
template = "{{.Body}}{{if .Fields.items}}{{index .Fields.items 3}}{{end}}"
`), bot)
	cases := []struct{ data, reason string }{
		{`{"body": "unterminated"`, ReasonInvalidJSON},
		{`["not", "an", "object"]`, ReasonInvalidJSON},
		{"{\"body\": \"bad \xff\"}", ReasonInvalidUTF8},
		{`{"body": "` + strings.Repeat("x", 200) + `"}`, ReasonOversized},
		{`{"body": "x", "to": 5}`, ReasonInvalidField},
		{`{"title": ""}`, ReasonEmpty},
	}
	for i, c := range cases {
		jsPublish(t, js, "ev.bad", c.data, fmt.Sprintf("bad-%d", i))
	}
	jsPublish(t, js, "ev.good", `{"body": "fine"}`, "")
	if err := nc.Publish("core.in", []byte(`{"body": "x", "items": [1]}`)); err != nil {
		t.Fatal(err)
	}
	// The JetStream relay's dead letters come in order; the core relay's
	// may come between them.
	var evDead, allDead []*nats.Msg
	for range len(cases) + 1 {
		m, err := dead.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("dead letter %d: %v", len(evDead)+len(allDead), err)
		}
		if m.Subject == "dead.all" {
			allDead = append(allDead, m)
		} else {
			evDead = append(evDead, m)
		}
	}
	if len(allDead) != 1 || allDead[0].Header.Get(HeaderReason) != ReasonTemplate || allDead[0].Header.Get(HeaderRelay) != "core.in" {
		t.Fatalf("template dead letters: %d, %+v", len(allDead), allDead)
	}
	for i, c := range cases {
		m := evDead[i]
		if m.Subject != "dead.ev" || m.Header.Get(HeaderReason) != c.reason || m.Header.Get(HeaderSubject) != "ev.bad" ||
			m.Header.Get(HeaderMsgID) != fmt.Sprintf("bad-%d", i) || m.Header.Get(nats.MsgIdHdr) != "" || m.Header.Get(HeaderError) == "" {
			t.Errorf("dead letter %d: subject %s header %v", i, m.Subject, m.Header)
		}
		if c.reason == ReasonOversized {
			if len(m.Data) != 100 || m.Header.Get(HeaderTruncated) != "true" {
				t.Errorf("oversized dead letter: %d bytes, headers %v", len(m.Data), m.Header)
			}
		} else if string(m.Data) != c.data {
			t.Errorf("dead letter %d data = %q", i, m.Data)
		}
	}
	waitFor(t, 5*time.Second, "every message acked", func() bool {
		info := consumerInfo(t, js, "EV", "d")
		return info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == uint64(len(cases)+1)
	})
	if got := bodies(bot.messages()); got != "fine→ops@example.org(headline)" {
		t.Errorf("sent %s", got)
	}
	if v := metricValue(t, bot.reg, "crier_nats_relay_dead_letters_total", "relay", "ev.>", "reason", ReasonInvalidJSON); v != 2 {
		t.Errorf("invalid-json dead letters = %v, want 2", v)
	}
	if v := metricValue(t, bot.reg, "crier_nats_relay_dead_letters_total", "relay", "ev.>", "reason", ReasonOversized); v != 1 {
		t.Errorf("oversized dead letters = %v, want 1", v)
	}
}

func TestBackpressureJetStreamLosesNothing(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	bot := newFakeBot()
	bot.busyUntil = time.Now().Add(time.Hour) // busy until the messages are in
	startPlugin(t, loadConfig(t, srv.ClientURL(), jsRelay+"max_ack_pending = 50\n"), bot)
	const total = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var futures []jetstream.PubAckFuture
	for i := range total {
		f, err := js.PublishAsync(fmt.Sprintf("ev.%d", i%7), []byte(fmt.Sprintf("m%04d", i)))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing timed out")
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		}
	}
	// The relay is paused: nothing sent, and JetStream holds at most
	// max_ack_pending messages out.
	time.Sleep(300 * time.Millisecond)
	if n := len(bot.messages()); n != 0 {
		t.Fatalf("%d sends while busy", n)
	}
	if info := consumerInfo(t, js, "EV", "crier-ev"); info.NumAckPending > 50 {
		t.Fatalf("%d messages in flight, more than max_ack_pending", info.NumAckPending)
	}
	bot.mu.Lock()
	bot.busyUntil = time.Now().Add(500 * time.Millisecond)
	bot.mu.Unlock()
	waitFor(t, 30*time.Second, "every message", func() bool { return len(bot.messages()) >= total })
	waitFor(t, 10*time.Second, "every ack", func() bool {
		info := consumerInfo(t, js, "EV", "crier-ev")
		return info.NumAckPending == 0 && info.AckFloor.Stream == total
	})
	seen := map[string]int{}
	for _, m := range bot.messages() {
		seen[m.Body]++
	}
	for i := range total {
		if b := fmt.Sprintf("m%04d", i); seen[b] != 1 {
			t.Errorf("%s sent %d times", b, seen[b])
		}
	}
	if len(bot.messages()) != total {
		t.Errorf("%d sends, want %d", len(bot.messages()), total)
	}
	if v := metricValue(t, bot.reg, "crier_nats_relay_busy_total", "relay", "ev.>"); v < 2 {
		t.Errorf("busy metric = %v", v)
	}
}

func TestBackpressureCoreDrops(t *testing.T) {
	srv := startNATS(t)
	nc, _ := connect(t, srv)
	bot := newFakeBot()
	bot.alwaysBusy = true
	startPlugin(t, loadConfig(t, srv.ClientURL(), `
[[nats.relay]]
subject = "c.>"
to = ["a@example.org"]
`), bot)
	for i := range 10 {
		if err := nc.Publish("c.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "drops counted", func() bool {
		return metricValue(t, bot.reg, "crier_nats_relay_drops_total", "relay", "c.>", "reason", "busy") == 10
	})
	if len(bot.messages()) != 0 {
		t.Fatal("a message was sent while busy")
	}
}

func TestReverseEvents(t *testing.T) {
	srv := startNATS(t)
	nc, _ := connect(t, srv)
	sub, err := nc.SubscribeSync("xmpp.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	bot := newFakeBot()
	startPlugin(t, loadConfig(t, srv.ClientURL(), `publish = "xmpp.{{.Room}}.{{.Nick}}"`+"\n"), bot)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	bot.publishEvent(plugins.Event{Time: at, Type: "groupchat", From: "lobby@conference.example.org/al.ice *",
		Room: "lobby@conference.example.org", Nick: "al.ice *", Body: "hi all", ID: "m1"})
	bot.publishEvent(plugins.Event{Time: at, Type: "chat", From: "bob@example.org/phone", Body: "psst"})
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "xmpp.lobby.al_ice__" {
		t.Errorf("room event subject = %q", m.Subject)
	}
	var ev Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	want := Event{Time: at, Type: "groupchat", From: "lobby@conference.example.org/al.ice *", Room: "lobby@conference.example.org",
		Nick: "al.ice *", Body: "hi all", ID: "m1"}
	if ev != want {
		t.Errorf("event = %+v\nwant    %+v", ev, want)
	}
	m, err = sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "xmpp._.bob" || !strings.Contains(string(m.Data), `"body":"psst"`) {
		t.Errorf("chat event: %s %s", m.Subject, m.Data)
	}
	// The counter moves just after the publish: wait for it.
	waitFor(t, 5*time.Second, "2 events counted as published", func() bool {
		return metricValue(t, bot.reg, "crier_nats_events_total", "result", "published") == 2
	})
}

func TestRequestReplyAfterAck(t *testing.T) {
	srv := startNATS(t)
	nc, _ := connect(t, srv)
	bot := newFakeBot()
	bot.hold = true
	startPlugin(t, loadConfig(t, srv.ClientURL(), `request = "crier.send"`+"\n"), bot)

	type result struct {
		rep Reply
		err error
	}
	ask := func(r Request) chan result {
		ch := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rep, err := SendRequest(ctx, nc, "crier.send", r)
			ch <- result{rep, err}
		}()
		return ch
	}
	ch := ask(Request{To: "lobby@conference.example.org", Body: "deploy done", ID: "r1"})
	waitFor(t, 5*time.Second, "send", func() bool { return len(bot.messages()) == 1 })
	select {
	case r := <-ch:
		t.Fatalf("replied before the XMPP server acked: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	bot.release(nil)
	r := <-ch
	if r.err != nil || !r.rep.OK || r.rep.OriginID != bot.messages()[0].OriginID {
		t.Fatalf("reply = %+v, %v", r.rep, r.err)
	}
	if m := bot.messages()[0]; m.To != "lobby@conference.example.org" || m.Type != "groupchat" || m.Body != "deploy done" {
		t.Errorf("sent %+v", m)
	}

	ch = ask(Request{To: "bob@example.org", Body: "x", Subject: "s"})
	waitFor(t, 5*time.Second, "second send", func() bool { return len(bot.messages()) == 2 })
	bot.release(errLost)
	r = <-ch
	if !errors.Is(r.err, ErrRefused) || !strings.Contains(r.rep.Error, errLost.Error()) {
		t.Fatalf("failed send: reply %+v, %v", r.rep, r.err)
	}
	if m := bot.messages()[1]; m.Type != "chat" || m.Subject != "s" {
		t.Errorf("sent %+v", m)
	}

	bot.mu.Lock()
	bot.alwaysBusy = true
	bot.mu.Unlock()
	if r := <-ask(Request{To: "bob@example.org", Body: "x"}); !errors.Is(r.err, ErrRefused) || !strings.Contains(r.rep.Error, "full") {
		t.Errorf("busy: %+v %v", r.rep, r.err)
	}
	msg, err := nc.Request("crier.send", []byte(`{"to": "", "body": "x"}`), 5*time.Second)
	if err != nil || !strings.Contains(string(msg.Data), "not a JID") {
		t.Errorf("invalid request reply: %v %s", err, msg.Data)
	}
	if v := metricValue(t, bot.reg, "crier_nats_requests_total", "result", "ok"); v != 1 {
		t.Errorf("ok requests = %v", v)
	}
}

func TestStopIsSafeTwiceAndWaitsForInFlight(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	bot := newFakeBot()
	bot.hold = true
	p := startPlugin(t, loadConfig(t, srv.ClientURL(), jsRelay), bot)
	jsPublish(t, js, "ev.x", "bye", "")
	waitFor(t, 5*time.Second, "sent", func() bool { return len(bot.messages()) == 1 })
	var wg sync.WaitGroup
	wg.Add(1)
	var stopErr error
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopErr = p.Stop(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	bot.release(nil) // the ack still goes out during Stop
	wg.Wait()
	if stopErr != nil {
		t.Fatal(stopErr)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if ok, _ := p.Ready(); ok {
		t.Error("ready after Stop")
	}
	if info := consumerInfo(t, js, "EV", "crier-ev"); info.AckFloor.Stream != 1 {
		t.Errorf("ack floor %d after Stop, want 1", info.AckFloor.Stream)
	}
	if err := p.Publish("x", nil); !errors.Is(err, plugins.ErrStopped) {
		t.Errorf("Publish after Stop = %v", err)
	}
}
