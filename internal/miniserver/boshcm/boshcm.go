// Package boshcm is the mini server's BOSH connection manager
// (XEP-0124/XEP-0206): it turns HTTP requests to /http-bind into an XMPP
// stream handed to the server as a net.Conn.
package boshcm

import (
	"log/slog"
	"net"
	"net/http"
)

// Config wires the connection manager to the server.
type Config struct {
	Domain string
	// Serve runs one c2s stream over c until it ends (the server's ServeConn,
	// with the stream already counted as secure).
	Serve  func(c net.Conn)
	Logger *slog.Logger
}

// New returns the handler for /http-bind.
func New(cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "BOSH not implemented yet", http.StatusServiceUnavailable)
	})
}
