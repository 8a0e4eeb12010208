// Command natspush publishes one event to NATS as JSON, for trying crier's
// NATS relay (plugins/natsrelay): with the demo running (`crier run`, whose
// config.toml relays "demo.>" to alice and the lobby), the defaults publish
// an event that arrives as a headline.
//
//	go run ./examples/natspush -title "Disk full" -body "95% on db1" -severity warning
//
// The event carries a Nats-Msg-Id, so publishing it twice with the same -id
// relays it once (JetStream drops the duplicate).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Defaults: the demo's embedded NATS server and a subject its relay
// ([[nats.relay]] subject = "demo.>" in config.toml) forwards.
const (
	defaultURL     = "nats://127.0.0.1:4222"
	defaultSubject = "demo.alert"
)

// event is the JSON payload natsrelay understands in format "json".
type event struct {
	Title    string   `json:"title,omitempty"`
	Body     string   `json:"body"`
	Severity string   `json:"severity,omitempty"`
	URL      string   `json:"url,omitempty"`
	ID       string   `json:"id,omitempty"`
	To       []string `json:"to,omitempty"`
	Type     string   `json:"type,omitempty"`
}

func main() {
	url := flag.String("url", defaultURL, "NATS server to publish to (the demo's embedded one by default)")
	subject := flag.String("subject", defaultSubject, "NATS subject; crier relays it when a [[nats.relay]] subject matches (the demo relays demo.>)")
	title := flag.String("title", "Demo alert", "event title: the first part of the message")
	body := flag.String("body", "Something happened", "event body: the text of the message")
	severity := flag.String("severity", "info", "event severity (info, warning, critical…): the demo's template shows it as [WARNING]")
	link := flag.String("link", "", "a URL the message links to (the event's \"url\")")
	id := flag.String("id", "", "event id, sent as Nats-Msg-Id: the same id twice is relayed once (empty: a new id)")
	to := flag.String("to", "", "a JID that gets the event instead of the relay's own recipients (optional)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "natspush: unexpected arguments %q (the text goes in -body)\n", flag.Args())
		os.Exit(2)
	}
	if err := run(*url, *subject, *id, *to, event{Title: *title, Body: *body, Severity: *severity, URL: *link}); err != nil {
		fmt.Fprintln(os.Stderr, "natspush:", err)
		os.Exit(1)
	}
}

// run publishes ev on subject and waits until the server has it.
func run(url, subject, id, to string, ev event) error {
	if id == "" {
		id = nuid.Next()
	}
	ev.ID = id
	if to != "" {
		ev.To = []string{to}
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(url, nats.Name("natspush"), nats.Timeout(5*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, id)
	if err := nc.PublishMsg(msg); err != nil {
		return err
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return err
	}
	fmt.Printf("published %s on %s\n", id, subject)
	return nil
}
