package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"crier/internal/wswire"
	"crier/transport/bosh"
)

// Errors returned by Connect. Each failure wraps exactly one of ErrAuth,
// ErrTLS, ErrResolve, ErrConnect, ErrProtocol, ErrInsecure, ErrTimeout or
// ErrConfig with %w, so errors.Is tells the cause apart, and its message
// carries the detail (the SASL condition, the x509 reason, the stream error
// condition, the address). Reason maps them to short labels.
var (
	// ErrAuth means the server rejected the credentials (SASL failure) or
	// no SASL mechanism acceptable to both sides exists.
	ErrAuth = errors.New("transport: authentication failed")
	// ErrTLS means TLS could not be set up: the server does not offer
	// STARTTLS, refused it, or its certificate did not verify.
	ErrTLS = errors.New("transport: TLS failed")
	// ErrResolve means the server's name could not be resolved.
	ErrResolve = errors.New("transport: cannot resolve server")
	// ErrConnect means no connection could be opened (refused, unreachable,
	// timed out while dialing).
	ErrConnect = errors.New("transport: cannot connect")
	// ErrProtocol means the server broke off negotiation: a stream error,
	// a refused resource binding or XML that is not XMPP.
	ErrProtocol = errors.New("transport: protocol error")
	// ErrInsecure means the options asked for an unencrypted connection to
	// a host that is not on the loopback interface.
	ErrInsecure = errors.New("transport: refusing an unencrypted connection")
	// ErrTimeout means the connection was not ready within Options.Timeout.
	ErrTimeout = errors.New("transport: timed out")
	// ErrConfig means the options themselves are invalid.
	ErrConfig = errors.New("transport: invalid options")
	// ErrClosed is returned by Inject after Close.
	ErrClosed = errors.New("transport: connection closed")
)

// Reason returns a short, stable label naming the cause of err, for metrics
// and log lines: "auth", "tls", "dns", "connect", "timeout", "protocol",
// "insecure", "config", "closed", "canceled" or "other". A nil error gives "".
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrAuth):
		return "auth"
	case errors.Is(err, ErrTLS):
		return "tls"
	case errors.Is(err, ErrResolve):
		return "dns"
	case errors.Is(err, ErrConnect), errors.Is(err, syscall.ECONNREFUSED):
		return "connect"
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrProtocol), errors.Is(err, wswire.ErrFraming), errors.Is(err, wswire.ErrProtocol),
		errors.Is(err, wswire.ErrTooLarge):
		return "protocol"
	case errors.Is(err, ErrInsecure):
		return "insecure"
	case errors.Is(err, ErrConfig):
		return "config"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrClosed), errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, wswire.ErrClosedByPeer),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "closed"
	}
	var se stream.Error
	if errors.As(err, &se) {
		return "protocol"
	}
	return "other"
}

// phase says what Connect was doing when an error happened; it decides how
// an ambiguous low-level error (EOF, i/o timeout) is classified.
type phase int

const (
	phaseDial phase = iota
	phaseTLS
	phaseNegotiate
)

// classify wraps err with the sentinel naming its cause. ctx is the connect
// context (its deadline tells a timeout apart from a dead peer); obs holds
// what the tap saw of SASL and stream errors, if anything.
func classify(ctx context.Context, ph phase, err error, obs *observed) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrAuth, ErrTLS, ErrResolve, ErrConnect, ErrProtocol, ErrInsecure, ErrTimeout, ErrConfig} {
		if errors.Is(err, s) {
			return err // already classified
		}
	}
	if obs != nil {
		if cond := obs.saslFailure(); cond != "" {
			return fmt.Errorf("%w: server said %s", ErrAuth, cond)
		}
		if se := obs.streamError(); se != nil {
			return fmt.Errorf("%w: stream error from server: %s", ErrProtocol, streamErrorText(*se))
		}
	}
	var se stream.Error
	if errors.As(err, &se) {
		return fmt.Errorf("%w: stream error from server: %s", ErrProtocol, streamErrorText(se))
	}
	var ste stanza.Error
	if errors.As(err, &ste) {
		return fmt.Errorf("%w: %s", ErrProtocol, ste.Condition)
	}
	if cause := tlsCause(err); cause != nil {
		return fmt.Errorf("%w: %w", ErrTLS, cause)
	}
	if errors.Is(err, bosh.ErrConfig) {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsTimeout && ctx.Err() != nil {
			return fmt.Errorf("%w: %w: %w", ErrResolve, ErrTimeout, err)
		}
		return fmt.Errorf("%w: %w", ErrResolve, err)
	}
	if ctx.Err() == context.Canceled || errors.Is(err, context.Canceled) {
		return fmt.Errorf("transport: connect canceled: %w", context.Canceled)
	}
	deadline := ctx.Err() == context.DeadlineExceeded || errors.Is(err, os.ErrDeadlineExceeded)
	if !deadline && dialFailure(err) {
		// BOSH dials lazily, so a refused connection shows up while
		// negotiating, too.
		return fmt.Errorf("%w: %w", ErrConnect, err)
	}
	if ph == phaseDial {
		if deadline {
			return fmt.Errorf("%w: %w: %w", ErrConnect, ErrTimeout, err)
		}
		return fmt.Errorf("%w: %w", ErrConnect, err)
	}
	if deadline {
		return fmt.Errorf("%w while negotiating: %w", ErrTimeout, context.DeadlineExceeded)
	}
	if ph == phaseTLS {
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	if obs != nil && obs.noCommonMechanism() && noMechanism(err) {
		return fmt.Errorf("%w: no SASL mechanism in common, server offers %v", ErrAuth, obs.offered())
	}
	if errors.Is(err, bosh.ErrHTTP) {
		return fmt.Errorf("%w: %w", ErrConnect, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w: server closed the connection during negotiation: %w", ErrProtocol, err)
	}
	return fmt.Errorf("%w: %w", ErrProtocol, err)
}

// noMechanism reports whether err is mellium's own "no matching SASL
// mechanisms" (unexported there). Only then is a negotiation that offered
// mechanisms and started none a matter of mechanisms: any other failure in
// between (XML mellium cannot take, a cut connection) keeps its own words.
func noMechanism(err error) bool {
	return strings.Contains(err.Error(), "no matching SASL mechanism")
}

// dialFailure reports whether err is a failure to open a connection.
func dialFailure(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

// tlsCause returns the certificate or handshake error inside err, if any.
func tlsCause(err error) error {
	var (
		cve *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		ae  tls.AlertError
		rhe tls.RecordHeaderError
		ech *tls.ECHRejectionError
	)
	switch {
	case errors.As(err, &cve), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return err
	case errors.As(err, &ae), errors.As(err, &rhe), errors.As(err, &ech):
		return err
	}
	return nil
}

// streamErrorText renders a stream error as "condition (text)".
func streamErrorText(se stream.Error) string {
	s := se.Err
	if s == "" {
		s = "undefined-condition"
	}
	for _, t := range se.Text {
		if t.Value != "" {
			return s + " (" + t.Value + ")"
		}
	}
	return s
}
