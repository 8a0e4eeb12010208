package wswire

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Subprotocol is the WebSocket subprotocol of RFC 7395.
const Subprotocol = "xmpp"

// acceptGUID is the constant of RFC 6455 §1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey returns the Sec-WebSocket-Accept value for a client's key.
func AcceptKey(key string) string {
	h := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// ClientOptions are the client's side of the handshake.
type ClientOptions struct {
	// Origin, when set, is sent as the Origin header.
	Origin string
	// Header holds more request headers (optional).
	Header http.Header
}

// ClientHandshake runs the opening handshake of RFC 6455 §4.1 on nc, which
// is already connected (and TLS-secured for wss) to u's host, asking for
// the xmpp subprotocol. It returns the reader to go on with (it may hold
// the first frames). Deadlines are the caller's, on nc.
func ClientHandshake(nc net.Conn, u *url.URL, o ClientOptions) (*bufio.Reader, error) {
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	ru := *u
	switch ru.Scheme {
	case "ws":
		ru.Scheme = "http"
	case "wss":
		ru.Scheme = "https"
	}
	req, err := http.NewRequest(http.MethodGet, ru.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	for name, vs := range o.Header {
		req.Header[name] = slices.Clone(vs)
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Protocol", Subprotocol)
	if o.Origin != "" {
		req.Header.Set("Origin", o.Origin)
	}
	if err := req.Write(nc); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 8<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	// The body of a 101 is the WebSocket stream itself: never read it
	// through resp.
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return nil, fmt.Errorf("%w: server answered %s", ErrHandshake, resp.Status)
	case !headerHas(resp.Header, "Upgrade", "websocket") || !headerHas(resp.Header, "Connection", "upgrade"):
		return nil, fmt.Errorf("%w: the response is not a WebSocket upgrade", ErrHandshake)
	case resp.Header.Get("Sec-WebSocket-Accept") != AcceptKey(key):
		return nil, fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrHandshake)
	case resp.Header.Get("Sec-WebSocket-Protocol") != Subprotocol:
		return nil, fmt.Errorf("%w: the server did not accept the %q subprotocol (got %q)", ErrHandshake, Subprotocol, resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	return br, nil
}

// headerHas reports whether the comma-separated header name holds token
// (case-insensitive).
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// SameOrigin accepts a request without an Origin header (not a browser)
// and one whose Origin names the host it was sent to.
func SameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// Upgrade answers a client's opening handshake (RFC 6455 §4.2) for the
// xmpp subprotocol and takes the connection over from the HTTP server.
// checkOrigin decides on the Origin header (nil: SameOrigin). On failure
// it has answered with an HTTP error and returns an error wrapping
// ErrHandshake. The returned reader may already hold the first frames.
func Upgrade(w http.ResponseWriter, r *http.Request, checkOrigin func(*http.Request) bool) (net.Conn, *bufio.Reader, error) {
	if checkOrigin == nil {
		checkOrigin = SameOrigin
	}
	fail := func(code int, msg string) (net.Conn, *bufio.Reader, error) {
		http.Error(w, msg, code)
		return nil, nil, fmt.Errorf("%w: %s", ErrHandshake, msg)
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	raw, kerr := base64.StdEncoding.DecodeString(key)
	switch {
	case r.Method != http.MethodGet:
		return fail(http.StatusMethodNotAllowed, "a WebSocket handshake is a GET")
	case !headerHas(r.Header, "Upgrade", "websocket") || !headerHas(r.Header, "Connection", "upgrade"):
		return fail(http.StatusBadRequest, "not a WebSocket upgrade")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		w.Header().Set("Sec-WebSocket-Version", "13")
		return fail(http.StatusUpgradeRequired, "unsupported WebSocket version")
	case kerr != nil || len(raw) != 16:
		return fail(http.StatusBadRequest, "bad Sec-WebSocket-Key")
	case !headerHas(r.Header, "Sec-WebSocket-Protocol", Subprotocol):
		return fail(http.StatusBadRequest, "the xmpp subprotocol is required (RFC 7395)")
	case !checkOrigin(r):
		return fail(http.StatusForbidden, "origin not allowed")
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return fail(http.StatusInternalServerError, "cannot take the connection over")
	}
	_ = nc.SetDeadline(time.Time{}) // the HTTP server's deadlines end here
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + AcceptKey(key) + "\r\nSec-WebSocket-Protocol: " + Subprotocol + "\r\n\r\n"
	if _, err := brw.WriteString(resp); err != nil {
		nc.Close()
		return nil, nil, err
	}
	if err := brw.Flush(); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, brw.Reader, nil
}
