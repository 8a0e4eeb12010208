package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"crier/internal/config"
	"crier/transport"
)

// OneShot is one message for SendOnce.
type OneShot struct {
	To, Type, Subject, Body string
}

// SendOnce connects with cfg's account, sends one message and returns nil
// only once the server acknowledged it. The acknowledgement is an iq ping
// sent right after the message: a server handles the stanzas of one stream
// in order, so its answer to the ping means it has processed the message.
// For a room, the bot joins first (a server drops groupchat from
// non-occupants) and leaves after.
func SendOnce(ctx context.Context, cfg *config.Config, opts Options, m OneShot) error {
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
		TLSConfig: tc, Timeout: x.ConnectTimeout.Std(), DisableSM: !x.StreamManagement, Logger: opts.Logger,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	serveErr := make(chan error, 1)
	joined := make(chan struct{}, 1)
	room := ""
	if m.Type == "groupchat" {
		room = bareOf(m.To)
	}
	nick := x.Addr().Localpart() + "-send"
	h := &oneShotHandler{room: room, nick: nick, joined: joined}
	go func() { serveErr <- conn.Session.Serve(h) }()

	if room != "" {
		it := &Item{Kind: "presence", To: room + "/" + nick, Payload: func() xml.TokenReader { return joinPayload("") }}
		if err := conn.Session.Send(ctx, it.tokens()); err != nil {
			return fmt.Errorf("bot: join %s: %w", room, err)
		}
		select {
		case <-joined:
		case err := <-serveErr:
			return fmt.Errorf("bot: stream ended before joining %s: %v", room, err)
		case <-ctx.Done():
			return fmt.Errorf("bot: joining %s: %w", room, ctx.Err())
		}
		if h.joinErr != "" {
			return fmt.Errorf("bot: cannot join %s: %s", room, h.joinErr)
		}
	}
	it := &Item{Kind: "message", To: m.To, Type: m.Type, Body: cleanText(m.Body), Subject: cleanText(m.Subject), ID: "send-1"}
	if err := conn.Session.Send(ctx, it.tokens()); err != nil {
		return fmt.Errorf("bot: send: %w", err)
	}
	err = ping.Send(ctx, conn.Session, x.Addr().Domain())
	var se stanza.Error
	if err != nil && !errors.As(err, &se) {
		return fmt.Errorf("bot: no acknowledgement from the server: %w", err)
	}
	if h.msgErr != "" {
		return fmt.Errorf("bot: the server refused the message: %s", h.msgErr)
	}
	if room != "" {
		leave := &Item{Kind: "presence", To: room + "/" + nick, Type: "unavailable"}
		_ = conn.Session.Send(ctx, leave.tokens())
	}
	return nil
}

// oneShotHandler watches for the join and for an error answer to the
// message. It never blocks and never ends the session.
type oneShotHandler struct {
	room, nick string
	joined     chan struct{}
	joinErr    string
	msgErr     string
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
	switch {
	case start.Name.Local == "presence" && h.room != "" && bareOf(st.From) == h.room:
		self := false
		if st.MUCUser != nil {
			for _, s := range st.MUCUser.Status {
				self = self || s.Code == 110
			}
		}
		if st.Type == "error" && st.Error != nil {
			h.joinErr = st.Error.Condition
			self = true
		}
		if self {
			select {
			case h.joined <- struct{}{}:
			default:
			}
		}
	case start.Name.Local == "message" && st.Type == "error" && st.ID == "send-1":
		h.msgErr = "undefined-condition"
		if st.Error != nil {
			h.msgErr = st.Error.Condition
		}
	}
	return nil
}
