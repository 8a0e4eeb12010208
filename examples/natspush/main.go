// Command natspush publishes one headline event to NATS, for trying the
// natsrelay plugin: with crier running a relay on "alerts.>" in JSON
// format, the event arrives as an XMPP message.
//
//	go run ./examples/natspush -subject alerts.demo -title "Disk full" -body "95% on db1"
//
// The event carries a Nats-Msg-Id, so publishing it twice with the same -id
// relays it once.
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
	url := flag.String("url", "nats://127.0.0.1:4222", "NATS server URL")
	subject := flag.String("subject", "alerts.demo", "subject to publish on")
	title := flag.String("title", "Demo alert", "event title")
	body := flag.String("body", "Something happened", "event body")
	severity := flag.String("severity", "info", "event severity")
	link := flag.String("link", "", "URL shown with the event")
	id := flag.String("id", "", "event id (Nats-Msg-Id); empty makes a new one")
	to := flag.String("to", "", "recipient JID replacing the relay's (optional)")
	flag.Parse()
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
