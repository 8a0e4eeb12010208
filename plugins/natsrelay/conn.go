package natsrelay

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Options returns the connection options of the [nats] table: the client
// name, the credentials (user and password, token, creds file or nkey seed
// file) and the extra CA.
func Options(n Config) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name("crier"), nats.Timeout(5 * time.Second)}
	switch {
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, n.Password.Reveal()))
	case n.Token != "":
		opts = append(opts, nats.Token(n.Token.Reveal()))
	case n.CredsFile != "":
		opts = append(opts, nats.UserCredentials(n.CredsFile))
	case n.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(n.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsrelay: nkey_file: %w", err)
		}
		opts = append(opts, o)
	}
	if n.CAFile != "" {
		opts = append(opts, nats.RootCAs(n.CAFile))
	}
	return opts, nil
}

// Connect connects once to nats.url with Options, failing at once when the
// server cannot be reached: it is for one-shot commands. The daemon's
// connection retries instead.
func Connect(n Config) (*nats.Conn, error) {
	opts, err := Options(n)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsrelay: connect: %w", err)
	}
	return nc, nil
}

// SendRequest asks a running crier, through its nats.request subject, to
// send r, and waits (within ctx) until crier answers that the XMPP server
// has the message. A refusal is an error wrapping ErrRefused.
func SendRequest(ctx context.Context, nc *nats.Conn, subject string, r Request) (Reply, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return Reply{}, err
	}
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return Reply{}, fmt.Errorf("natsrelay: request: %w", err)
	}
	var rep Reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return Reply{}, fmt.Errorf("natsrelay: reply: %w", err)
	}
	if !rep.OK {
		return rep, fmt.Errorf("%w: %s", ErrRefused, rep.Error)
	}
	return rep, nil
}
