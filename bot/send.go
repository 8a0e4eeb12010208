package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/bot/outbox"
	"crier/internal/config"
	"crier/transport"
)

// OneShot is one message for SendOnce.
type OneShot struct {
	To, Type, Subject, Body string
}

// SendOnce connects with cfg's account, sends the messages and returns nil
// only once the server acknowledged every one. The acknowledgement is an
// iq ping sent right after the messages: a server handles the stanzas of
// one stream in order, so its answer to the ping means it has processed
// them, and an error answer to a message (an unknown domain, a room that
// refused it) has arrived before it. For groupchat messages the session
// joins each room first (a server drops groupchat from non-occupants) and
// leaves after. The error, when not nil, names every recipient that did
// not get its message (errors.Join of one error each), or why nothing was
// sent at all.
func SendOnce(ctx context.Context, cfg *config.Config, opts Options, msgs ...OneShot) error {
	if len(msgs) == 0 {
		return nil
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tc, err := tlsConfig(cfg, opts.RootCAs)
	if err != nil {
		return err
	}
	x := cfg.XMPP
	// A resource of its own, so that the one-shot session does not replace
	// (and disconnect) a running daemon of the same account.
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	conn, err := transport.Connect(ctx, transport.Options{
		JID: x.Addr(), Password: x.Password.Reveal(), Resource: x.Resource + "-send-" + hex.EncodeToString(rnd[:]),
		Transport: x.Transport, Address: x.Address, TLS: x.TLS, BOSHURL: x.BOSHURL,
		WSURL: x.WebSocketURL, WSOrigin: x.WebSocketOrigin,
		TLSConfig: tc, Timeout: x.ConnectTimeout.Std(), DisableSM: !x.StreamManagement, Logger: opts.Logger,
	})
	if err != nil {
		return err
	}
	defer conn.Close()

	h := &oneShotHandler{rooms: make(map[string]*oneShotRoom), refused: make(map[string]string), changed: make(chan struct{}, 1)}
	// A nick of its own too: two sends into one room at once do not
	// conflict.
	nick := x.Addr().Localpart() + "-send-" + hex.EncodeToString(rnd[:])
	// As a component, every stanza names its sender: the messages
	// [xmpp] from, the joins an occupant address under it.
	var from, occupant string
	server := x.Addr().Domain()
	if x.Component() {
		from = x.From
		local, _, _ := strings.Cut(x.From, "@")
		nick = local + "-send-" + hex.EncodeToString(rnd[:])
		occupant = x.From + "/" + nick
		if d, err := jid.Parse(x.ServerDomain); err == nil {
			server = d
		}
	}
	var rooms []string
	for _, m := range msgs {
		if r := bareOf(m.To); m.Type == "groupchat" && h.rooms[r] == nil {
			h.rooms[r] = &oneShotRoom{}
			rooms = append(rooms, r)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- conn.Session.Serve(h) }()

	var failed []error
	joined := make(map[string]bool, len(rooms))
	if len(rooms) > 0 {
		for _, r := range rooms {
			it := &outbox.Item{Kind: outbox.Presence, From: occupant, To: r + "/" + nick, Payload: func() xml.TokenReader { return joinPayload(roomPassword(cfg, r)) }}
			if err := conn.Session.Send(ctx, it.Tokens()); err != nil {
				return fmt.Errorf("bot: join %s: %w", r, err)
			}
		}
		if err := h.waitJoins(ctx, serveErr); err != nil {
			return err
		}
		for _, r := range rooms {
			if why := h.joinError(r); why != "" {
				failed = append(failed, fmt.Errorf("bot: %s: cannot join the room: %s", r, why))
				continue
			}
			joined[r] = true
		}
	}
	ids := make(map[string]string, len(msgs)) // stanza id -> recipient
	for i, m := range msgs {
		if m.Type == "groupchat" && !joined[bareOf(m.To)] {
			continue
		}
		id := "send-" + strconv.Itoa(i+1)
		ids[id] = m.To
		it := &outbox.Item{Kind: outbox.Message, From: from, To: m.To, Type: m.Type, Body: cleanText(m.Body), Subject: cleanText(m.Subject), ID: id}
		if m.Type == "groupchat" {
			it.From = occupant
		}
		if err := conn.Session.Send(ctx, it.Tokens()); err != nil {
			return fmt.Errorf("bot: send to %s: %w", m.To, err)
		}
	}
	if len(ids) > 0 {
		err = pingFrom(ctx, conn, x.Addr().Domain(), server)
		var se stanza.Error
		if err != nil && !errors.As(err, &se) {
			return fmt.Errorf("bot: no acknowledgement from the server: %w", err)
		}
	}
	for i := range msgs {
		id := "send-" + strconv.Itoa(i+1)
		if to, ok := ids[id]; ok {
			if why := h.refusal(id); why != "" {
				failed = append(failed, fmt.Errorf("bot: %s: the server refused the message: %s", to, why))
			}
		}
	}
	for r := range joined {
		leave := &outbox.Item{Kind: outbox.Presence, From: occupant, To: r + "/" + nick, Type: "unavailable"}
		_ = conn.Session.Send(ctx, leave.Tokens())
	}
	return errors.Join(failed...)
}

// roomPassword returns the password cfg has for room, or "".
func roomPassword(cfg *config.Config, room string) string {
	for _, r := range cfg.Rooms {
		if strings.EqualFold(r.Addr().Bare().String(), room) {
			return r.Password.Reveal()
		}
	}
	return ""
}

// oneShotRoom is the state of one room SendOnce joins.
type oneShotRoom struct {
	done bool   // the room answered the join
	err  string // why the join failed, when it did
}

// oneShotHandler watches for the joins and for error answers to the
// messages. It never blocks and never ends the session.
type oneShotHandler struct {
	mu      sync.Mutex
	rooms   map[string]*oneShotRoom // bare room JID -> join state
	refused map[string]string       // message id -> error condition
	changed chan struct{}           // poked after each change
}

// waitJoins waits until every room answered its join.
func (h *oneShotHandler) waitJoins(ctx context.Context, serveErr <-chan error) error {
	for {
		h.mu.Lock()
		pending := ""
		for r, st := range h.rooms {
			if !st.done {
				pending = r
				break
			}
		}
		h.mu.Unlock()
		if pending == "" {
			return nil
		}
		select {
		case <-h.changed:
		case err := <-serveErr:
			return fmt.Errorf("bot: stream ended before joining %s: %v", pending, err)
		case <-ctx.Done():
			return fmt.Errorf("bot: joining %s: %w", pending, ctx.Err())
		}
	}
}

func (h *oneShotHandler) joinError(room string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[room].err
}

func (h *oneShotHandler) refusal(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused[id]
}

// HandleXMPP implements xmpp.Handler.
func (h *oneShotHandler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local == "iq" {
		return nil // mellium answers get/set with service-unavailable
	}
	var st inStanza
	if err := readStanza(t, start, &st); err != nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case start.Name.Local == "presence":
		rm := h.rooms[bareOf(st.From)]
		if rm == nil || rm.done {
			return nil
		}
		if st.Type == "error" {
			rm.done, rm.err = true, "undefined-condition"
			if st.Error != nil {
				rm.err = st.Error.Condition
			}
		} else if st.MUCUser != nil {
			for _, s := range st.MUCUser.Status {
				rm.done = rm.done || s.Code == 110
			}
		}
	case start.Name.Local == "message" && st.Type == "error" && strings.HasPrefix(st.ID, "send-"):
		why := "undefined-condition"
		if st.Error != nil {
			why = st.Error.Condition
		}
		h.refused[st.ID] = why
	default:
		return nil
	}
	select {
	case h.changed <- struct{}{}:
	default:
	}
	return nil
}

// pingFrom sends an XMPP ping from from (the component's domain; for a
// client it is the account's domain and the server ignores it) to the
// server and waits for the answer.
func pingFrom(ctx context.Context, conn *transport.Conn, from, server jid.JID) error {
	iq := stanza.IQ{From: from, To: server, Type: stanza.GetIQ}
	if from.Localpart() == "" && from.Domainpart() == server.Domainpart() {
		iq.From = jid.JID{}
	}
	resp, err := conn.Session.SendIQ(ctx, iq.Wrap(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}})))
	if err != nil {
		return err
	}
	defer resp.Close()
	d := xml.NewTokenDecoder(resp)
	tok, err := d.Token()
	if err != nil {
		return err
	}
	start, _ := tok.(xml.StartElement)
	var reply stanza.IQ
	if err := d.DecodeElement(&reply, &start); err != nil {
		return err
	}
	if reply.Type == stanza.ErrorIQ {
		return stanza.Error{Condition: stanza.UndefinedCondition}
	}
	return nil
}
