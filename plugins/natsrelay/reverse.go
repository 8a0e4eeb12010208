package natsrelay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"mellium.im/xmpp/jid"

	"crier/plugins"
)

// Event is the JSON document published to NATS for each message the bot
// receives (nats.publish).
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	From    string    `json:"from"`
	Room    string    `json:"room,omitempty"`
	Nick    string    `json:"nick,omitempty"`
	Body    string    `json:"body"`
	Subject string    `json:"subject,omitempty"`
	ID      string    `json:"id,omitempty"`
}

// SubjectData is what the nats.publish template sees. Every field is one
// subject token, already sanitised by SanitizeToken: an empty value is "_".
type SubjectData struct {
	// Type is the message type: groupchat, chat, normal or headline.
	Type string
	// Room is the room's localpart ("lobby" for lobby@conference.example.org);
	// "_" for a one-to-one message.
	Room string
	// Nick is the sender's nickname in the room, or the localpart of the
	// sender's JID for a one-to-one message.
	Nick string
	// User is the localpart of the sender's JID for a one-to-one message;
	// "_" for a room message, whose sender's real JID is not known.
	User string
	// Domain is the room's domain, or the sender's.
	Domain string
}

// subjectData builds the template data of ev.
func subjectData(ev plugins.Event) SubjectData {
	var d SubjectData
	from, _ := jid.Parse(ev.From)
	d.Type = ev.Type
	if ev.Room != "" {
		room, _ := jid.Parse(ev.Room)
		d.Room, d.Domain, d.Nick = room.Localpart(), room.Domainpart(), ev.Nick
		if d.Nick == "" {
			d.Nick = from.Resourcepart()
		}
	} else {
		d.User, d.Nick, d.Domain = from.Localpart(), from.Localpart(), from.Domainpart()
	}
	d.Type, d.Room, d.Nick = SanitizeToken(d.Type), SanitizeToken(d.Room), SanitizeToken(d.Nick)
	d.User, d.Domain = SanitizeToken(d.User), SanitizeToken(d.Domain)
	return d
}

// parseSubjectTemplate parses the nats.publish template and checks that it
// renders a subject one may publish to.
func parseSubjectTemplate(src string) (*template.Template, error) {
	t, err := template.New("nats.publish").Option("missingkey=error").Funcs(funcs).Parse(src)
	if err != nil {
		return nil, err
	}
	s, err := render(t, SubjectData{Type: "groupchat", Room: "lobby", Nick: "alice", User: "_", Domain: "conference_example_org"})
	if err != nil {
		return nil, err
	}
	if !publishSubject(s) {
		return nil, fmt.Errorf("renders %q, not a subject to publish to", s)
	}
	return t, nil
}

// eventSubject renders the subject of ev with t.
func eventSubject(t *template.Template, ev plugins.Event) (string, error) {
	s, err := render(t, subjectData(ev))
	if err != nil {
		return "", err
	}
	if !publishSubject(s) {
		return "", fmt.Errorf("%q is not a subject to publish to", s)
	}
	return s, nil
}

// Observe is called for every message the bot receives (plugins.Observer):
// it must not block, so it queues the event for publishEvents and drops it
// when the queue is full.
func (p *Plugin) Observe(ev *plugins.Event) {
	if !p.observing.Load() || p.stopped.Load() {
		return
	}
	p.onEvent(*ev)
}

// onEvent queues one event to publish.
func (p *Plugin) onEvent(ev plugins.Event) {
	select {
	case p.events <- ev:
	default:
		p.met.events.WithLabelValues("dropped").Inc()
	}
}

// publishEvents publishes queued events until ctx ends.
func (p *Plugin) publishEvents(ctx context.Context) {
	defer p.loops.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-p.events:
			p.publishEvent(ev)
		}
	}
}

// publishEvent publishes one received message as an Event.
func (p *Plugin) publishEvent(ev plugins.Event) {
	subj, err := eventSubject(p.pubTmpl, ev)
	if err != nil {
		p.met.events.WithLabelValues("failed").Inc()
		p.log.Warn("received message not published", "err", err)
		return
	}
	data, err := json.Marshal(Event{
		Time: ev.Time.UTC(), Type: ev.Type, From: ev.From, Room: ev.Room, Nick: ev.Nick,
		Body: ev.Body, Subject: ev.Subject, ID: ev.ID,
	})
	if err == nil {
		err = p.nc.Publish(subj, data)
	}
	if err != nil {
		p.met.events.WithLabelValues("failed").Inc()
		p.log.Warn("received message not published", "subject", subj, "err", err)
		return
	}
	p.met.events.WithLabelValues("published").Inc()
}

// Request is the JSON body of a NATS request on nats.request: a message
// for the bot to send.
type Request struct {
	// To is the recipient's JID.
	To string `json:"to"`
	// Type is chat, groupchat, headline or normal; empty means groupchat
	// for a room and chat otherwise.
	Type    string `json:"type,omitempty"`
	Body    string `json:"body"`
	Subject string `json:"subject,omitempty"`
	// ID, when set, makes the stanza's origin-id, so that a retried
	// request is recognisable.
	ID string `json:"id,omitempty"`
}

// Reply is the JSON reply to a Request.
type Reply struct {
	// OK is true once the XMPP server has the message.
	OK bool `json:"ok"`
	// Error says why the message was not sent.
	Error string `json:"error,omitempty"`
	// OriginID is the stanza's XEP-0359 origin-id.
	OriginID string `json:"origin_id,omitempty"`
}

// ParseRequest reads and checks a Request: one JSON object of at most
// DefaultMaxBytes, valid UTF-8, a valid To, a known Type and a body or a
// subject.
func ParseRequest(data []byte) (Request, error) {
	var r Request
	if len(data) > DefaultMaxBytes {
		return r, fmt.Errorf("%w: more than %d bytes", ErrInvalidRequest, DefaultMaxBytes)
	}
	if !utf8.Valid(data) {
		return r, fmt.Errorf("%w: not UTF-8", ErrInvalidRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, fmt.Errorf("%w: data after the JSON object", ErrInvalidRequest)
	}
	j, err := jid.Parse(r.To)
	if r.To == "" || err != nil {
		return Request{}, fmt.Errorf("%w: to %q is not a JID", ErrInvalidRequest, r.To)
	}
	r.To = j.String()
	if r.Type != "" && !messageTypes[r.Type] {
		return Request{}, fmt.Errorf("%w: type %q is not chat, groupchat, headline or normal", ErrInvalidRequest, r.Type)
	}
	if r.Body == "" && r.Subject == "" {
		return Request{}, fmt.Errorf("%w: body and subject are empty", ErrInvalidRequest)
	}
	return r, nil
}

// onRequest sends a requested message and replies once the XMPP server
// acked it, or at once when it cannot be sent.
func (p *Plugin) onRequest(msg *nats.Msg) {
	reply := func(result string, rep Reply) {
		p.met.requests.WithLabelValues(result).Inc()
		if msg.Reply == "" {
			return
		}
		data, _ := json.Marshal(rep)
		if err := msg.Respond(data); err != nil && !p.stopped.Load() {
			p.log.Warn("request reply not sent", "err", err)
		}
	}
	req, err := ParseRequest(msg.Data)
	if err != nil {
		reply("invalid", Reply{Error: err.Error()})
		return
	}
	typ := req.Type
	if typ == "" {
		typ = "chat"
		if p.isRoom(req.To) {
			typ = "groupchat"
		}
	}
	oid := "crier-" + nuid.Next()
	if req.ID != "" {
		sum := sha256.Sum256([]byte("req:" + req.ID))
		oid = "crier-" + hex.EncodeToString(sum[:16])
	}
	m := plugins.Message{To: req.To, Type: typ, Body: req.Body, Subject: req.Subject, OriginID: oid}
	err = trySend(p.env.Host.Send, m, func(err error) {
		if err != nil {
			reply("failed", Reply{Error: err.Error(), OriginID: oid})
			return
		}
		reply("ok", Reply{OK: true, OriginID: oid})
	})
	switch {
	case errors.Is(err, plugins.ErrBusy):
		reply("busy", Reply{Error: err.Error()})
	case err != nil:
		reply("failed", Reply{Error: err.Error()})
	}
}
