package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"crier/internal/wswire"
)

// wsPingInterval is how often a WebSocket ping goes to the server, so that
// proxies in between do not end the connection as idle. Whether the server
// is alive is the XMPP keepalive's business.
const wsPingInterval = 30 * time.Second

// wsProxy picks the HTTP proxy for a WebSocket URL (given as its http or
// https equivalent), as the BOSH transport does: HTTPS_PROXY, HTTP_PROXY
// and NO_PROXY; never for loopback hosts. Tests replace it.
var wsProxy = http.ProxyFromEnvironment

// dialWebSocket opens the WebSocket (RFC 6455) of Options.WSURL with the
// xmpp subprotocol and returns it as a stream with the framing of RFC 7395
// (internal/wswire), which mellium negotiates as it would a TCP stream.
// wss:// verifies the server's certificate as the TCP path does (the URL's
// host is the name checked); ws:// is accepted only towards a loopback
// host, as tls "none" is.
func dialWebSocket(ctx context.Context, o Options) (net.Conn, bool, error) {
	u, err := url.Parse(o.WSURL)
	if err != nil || u.Host == "" {
		return nil, false, fmt.Errorf("%w: WebSocket URL %q is not an absolute URL", ErrConfig, o.WSURL)
	}
	var secure bool
	port := "80"
	switch u.Scheme {
	case "wss":
		secure, port = true, "443"
	case "ws":
		if err := requireLoopback(ctx, o.Resolver, u.Hostname()); err != nil {
			return nil, false, err
		}
	default:
		return nil, false, fmt.Errorf("%w: WebSocket URL scheme %q (want wss)", ErrConfig, u.Scheme)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	target := net.JoinHostPort(u.Hostname(), port)
	hu := *u
	hu.Scheme = "http"
	if secure {
		hu.Scheme = "https"
	}
	proxy, err := wsProxy(&http.Request{URL: &hu})
	if err != nil {
		return nil, false, fmt.Errorf("%w: proxy: %w", ErrConfig, err)
	}
	dialAddr := target
	if proxy != nil {
		dialAddr = proxy.Host
		if proxy.Port() == "" {
			dialAddr = net.JoinHostPort(proxy.Hostname(), "80")
		}
	}
	d := &net.Dialer{Resolver: o.Resolver, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", dialAddr)
	if err != nil {
		return nil, false, classify(ctx, phaseDial, err, nil)
	}
	// Handshakes are bounded by the connect context: its end closes the
	// connection, which fails a pending read or write at once.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if proxy != nil {
		if err := proxyConnect(nc, proxy, target); err != nil {
			nc.Close()
			return nil, false, classify(ctx, phaseDial, err, nil)
		}
	}
	if secure {
		cfg := o.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, false, classify(ctx, phaseTLS, err, nil)
		}
		nc = tc
	}
	br, err := wswire.ClientHandshake(nc, u, wswire.ClientOptions{Origin: o.WSOrigin})
	if err != nil {
		nc.Close()
		if errors.Is(err, wswire.ErrHandshake) {
			return nil, false, fmt.Errorf("%w: %s: %w", ErrConnect, o.WSURL, err)
		}
		return nil, false, classify(ctx, phaseDial, err, nil)
	}
	_ = nc.SetDeadline(time.Time{})
	ws := wswire.NewConn(nc, br, true, wswire.DefaultMaxMessage)
	return wswire.NewStreamConn(ws, wswire.StreamConfig{
		Client:        true,
		StripStartTLS: true,
		PingInterval:  wsPingInterval,
	}), secure, nil
}

// proxyConnect asks the HTTP proxy on nc for a tunnel to target (CONNECT,
// RFC 9110 §9.3.6), with the proxy URL's user and password as Basic
// credentials.
func proxyConnect(nc net.Conn, proxy *url.URL, target string) error {
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)) + "\r\n"
	}
	if _, err := nc.Write([]byte(req + "\r\n")); err != nil {
		return err
	}
	// Nothing comes through the tunnel before the client speaks (TLS or
	// the WebSocket handshake), so the reader takes no byte of it; a proxy
	// that sends more than its answer is refused.
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return fmt.Errorf("%w: proxy %s: %w", ErrConnect, proxy.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: proxy %s refused the tunnel to %s: %s", ErrConnect, proxy.Host, target, resp.Status)
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("%w: proxy %s sent data before the tunnel opened", ErrProtocol, proxy.Host)
	}
	return nil
}

// maxRedirects bounds how many times one Connect follows a WebSocket
// server's see-other-uri.
const maxRedirects = 3

// seeOtherURI returns the see-other-uri a WebSocket server closed the
// stream with during negotiation (RFC 7395 §3.6.1), or "".
func seeOtherURI(raw net.Conn) string {
	if sc, ok := raw.(*wswire.StreamConn); ok {
		return sc.SeeOtherURI()
	}
	return ""
}

// checkRedirect accepts a see-other-uri next for the endpoint from: an
// absolute ws:// or wss:// URL, and never from wss:// down to ws:// (RFC
// 7395 §3.6.1: the new connection must be at least as secure). A ws://
// target still has to be on this machine, which the dial checks.
func checkRedirect(from, next string) error {
	u, err := url.Parse(next)
	if err != nil || u.Host == "" || (u.Scheme != "ws" && u.Scheme != "wss") {
		return fmt.Errorf("%w: %s: the server's see-other-uri %q is not a ws:// or wss:// URL", ErrProtocol, from, next)
	}
	if f, err := url.Parse(from); err == nil && f.Scheme == "wss" && u.Scheme != "wss" {
		return fmt.Errorf("%w: %s: the server's see-other-uri %q would drop TLS", ErrInsecure, from, next)
	}
	return nil
}
