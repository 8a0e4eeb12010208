// Package bosh is crier's XEP-0124/XEP-0206 client: a net.Conn that speaks
// HTTP long-polling underneath, so mellium negotiates and runs an XMPP
// session over it exactly as over TCP.
package bosh

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// Config says where and how to connect.
type Config struct {
	URL    string       // https://host/http-bind
	Domain string       // the XMPP domain (the 'to' of the session request)
	Client *http.Client // TLS settings and proxy from the environment; nil = a default client
	Wait   int          // seconds a request may be held; 0 = 60
	Hold   int          // 0 = 1
}

// Dial creates a BOSH session and returns it as a net.Conn.
func Dial(ctx context.Context, cfg Config) (net.Conn, error) {
	return nil, errors.New("bosh: not implemented yet")
}
