// Command echobot is a bare XMPP bot written with mellium.im/xmpp alone, the
// baseline that crier's benchmarks compare against. It logs in (STARTTLS,
// SASL, resource binding), joins one multi-user chat room without history
// and answers "!ping" with "pong NICK", in the room and in one-to-one chats.
// It has no rules, no queue, no reconnection and no metrics: it is the
// least a correct bot has to do.
//
// Usage:
//
//	echobot -jid bot@example.org -password secret -addr 127.0.0.1:5222 \
//		-ca cert.pem -room lobby@conference.example.org
//
// When the room confirms the join, echobot prints "joined" and the time
// since the process started, for example "joined 38.2ms".
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"
)

// started approximates the start of the process: package variables are
// initialised before main runs.
var started = time.Now()

const (
	nsMUC     = "http://jabber.org/protocol/muc"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
	nsDelay   = "urn:xmpp:delay"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "echobot:", err)
		os.Exit(1)
	}
}

func run() error {
	addrJID := flag.String("jid", "", "the bot's bare JID, such as bot@localhost")
	password := flag.String("password", "", "the account's password")
	addr := flag.String("addr", "", "the server's client port, host:port (default: the JID's domain, port 5222)")
	caFile := flag.String("ca", "", "a PEM file of certificates to trust in addition to the system roots")
	room := flag.String("room", "", "the bare JID of the room to join (optional)")
	nick := flag.String("nick", "", "the nickname in the room (default: the JID's localpart)")
	also := flag.String("also", "", "comma-separated bare JIDs of more rooms to join, without answering there (to compare memory with a bot in several rooms)")
	timeout := flag.Duration("timeout", 20*time.Second, "limit for connecting and logging in")
	flag.Parse()

	self, err := jid.Parse(*addrJID)
	if err != nil || *addrJID == "" {
		return fmt.Errorf("-jid: a bare JID is required: %v", err)
	}
	self = self.Bare()
	if *nick == "" {
		*nick = self.Localpart()
	}
	if *addr == "" {
		*addr = net.JoinHostPort(self.Domainpart(), "5222")
	}
	var roomJID jid.JID
	if *room != "" {
		if roomJID, err = jid.Parse(*room + "/" + *nick); err != nil {
			return fmt.Errorf("-room: %w", err)
		}
	}
	tlsCfg := &tls.Config{ServerName: self.Domainpart(), MinVersion: tls.VersionTLS12}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca %s: no PEM certificate in it", *caFile)
		}
		tlsCfg.RootCAs = pool
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", *addr)
	if err != nil {
		return err
	}
	// The negotiation has its own deadline: a step that ignores the
	// context still ends.
	_ = conn.SetDeadline(time.Now().Add(*timeout))
	sess, err := xmpp.NewClientSession(dctx, self, conn,
		xmpp.StartTLS(tlsCfg),
		xmpp.SASL("", *password, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return fmt.Errorf("log in: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	defer sess.Close()

	b := &bot{room: roomJID}
	m := mux.New(stanza.NSClient,
		mux.MessageFunc(stanza.ChatMessage, xml.Name{Space: stanza.NSClient, Local: "body"}, b.message),
		mux.MessageFunc(stanza.GroupChatMessage, xml.Name{Space: stanza.NSClient, Local: "body"}, b.message),
		mux.PresenceFunc("", xml.Name{Space: nsMUCUser, Local: "x"}, b.presence),
	)
	served := make(chan error, 1)
	go func() { served <- sess.Serve(m) }()

	if err := sess.Send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
		return fmt.Errorf("initial presence: %w", err)
	}
	if *room != "" {
		history := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "history"}, Attr: []xml.Attr{{Name: xml.Name{Local: "maxstanzas"}, Value: "0"}}})
		join := stanza.Presence{To: roomJID}.Wrap(xmlstream.Wrap(history, xml.StartElement{Name: xml.Name{Space: nsMUC, Local: "x"}}))
		if err := sess.Send(ctx, join); err != nil {
			return fmt.Errorf("join %s: %w", *room, err)
		}
	}
	for _, r := range strings.Split(*also, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		occ, err := jid.Parse(r + "/" + *nick)
		if err != nil {
			return fmt.Errorf("-also: %w", err)
		}
		history := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "history"}, Attr: []xml.Attr{{Name: xml.Name{Local: "maxstanzas"}, Value: "0"}}})
		if err := sess.Send(ctx, stanza.Presence{To: occ}.Wrap(xmlstream.Wrap(history, xml.StartElement{Name: xml.Name{Space: nsMUC, Local: "x"}}))); err != nil {
			return fmt.Errorf("join %s: %w", r, err)
		}
	}

	select {
	case err := <-served:
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("session: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	// Leave the room and end the stream; Serve returns when the server
	// closes its side.
	if *room != "" {
		_ = sess.Send(context.Background(), stanza.Presence{To: roomJID, Type: stanza.UnavailablePresence}.Wrap(nil))
	}
	_ = sess.Close()
	select {
	case <-served:
	case <-time.After(2 * time.Second):
	}
	return nil
}

// bot holds what the handlers need to know.
type bot struct {
	room   jid.JID // the occupant JID room@service/nick; zero without a room
	joined bool
}

// inMessage is the part of an incoming message the bot reads.
type inMessage struct {
	Body  string    `xml:"body"`
	Delay *struct{} `xml:"urn:xmpp:delay delay"`
}

// message answers "!ping". It runs on the session's reading goroutine and
// writes the reply inline on the stream; it never returns an error, which
// would end the session.
func (b *bot) message(msg stanza.Message, t xmlstream.TokenReadEncoder) error {
	var in inMessage
	if err := xml.NewTokenDecoder(t).Decode(&in); err != nil {
		return nil
	}
	if in.Body != "!ping" || in.Delay != nil {
		return nil
	}
	to, nick := msg.From, msg.From.Localpart()
	if msg.Type == stanza.GroupChatMessage {
		if !msg.From.Bare().Equal(b.room.Bare()) {
			return nil
		}
		nick = msg.From.Resourcepart()
		if nick == b.room.Resourcepart() {
			return nil // our own message
		}
		to = msg.From.Bare()
	}
	body := xmlstream.Wrap(xmlstream.Token(xml.CharData("pong "+nick)), xml.StartElement{Name: xml.Name{Local: "body"}})
	_, _ = xmlstream.Copy(t, stanza.Message{To: to, Type: msg.Type}.Wrap(body))
	return nil
}

// presence prints "joined" the first time the room reflects the bot's own
// presence (status 110).
func (b *bot) presence(p stanza.Presence, t xmlstream.TokenReadEncoder) error {
	if b.joined || !p.From.Bare().Equal(b.room.Bare()) {
		return nil
	}
	var in struct {
		X struct {
			Status []struct {
				Code string `xml:"code,attr"`
			} `xml:"status"`
		} `xml:"http://jabber.org/protocol/muc#user x"`
	}
	if err := xml.NewTokenDecoder(t).Decode(&in); err != nil {
		return nil
	}
	for _, s := range in.X.Status {
		if s.Code == "110" {
			b.joined = true
			fmt.Printf("joined %v\n", time.Since(started).Round(100*time.Microsecond))
		}
	}
	return nil
}
