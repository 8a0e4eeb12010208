package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"crier/internal/xmpptest"
)

// TestWhitespaceBetweenElements: crier signs in through a proxy that writes
// whitespace after every top-level piece the server sends (stream headers,
// features, STARTTLS, SASL and bind answers), with each TLS mode, and the
// session works.
func TestWhitespaceBetweenElements(t *testing.T) {
	s := startMini(t)
	for _, mode := range []string{TLSStartTLS, TLSDirect} {
		t.Run(mode, func(t *testing.T) {
			up := s.Addr()
			if mode == TLSDirect {
				up = s.TLSAddr()
			}
			p := xmpptest.StartSpaceProxy(t, xmpptest.SpaceProxyOptions{Upstream: up, TLS: mode, RootCAs: s.CertPool()})
			var logs bytes.Buffer
			o := miniOptions(s)
			o.Address = p.Addr()
			o.TLS = mode
			o.TLSConfig = &tls.Config{RootCAs: p.CertPool()}
			o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			rec := &recorder{}
			o.Tap = rec
			c, err := Connect(t.Context(), o)
			if err != nil {
				t.Fatalf("connect through the whitespace proxy: %v\n%s", err, logs.String())
			}
			t.Cleanup(func() { c.Close() })
			roundTrip(t, c, rec)
			if n := p.Inserted(); n < 6 {
				t.Fatalf("the proxy inserted whitespace only %d times", n)
			}
			if err := p.Err(); err != nil {
				t.Fatalf("proxy: %v", err)
			}
			if strings.Contains(logs.String(), "tap stopped") {
				t.Fatalf("the tap lost the stream:\n%s", logs.String())
			}
		})
	}
}

// TestTapDropsWhitespace: whatever the cuts between reads, the decoder
// gets the incoming stream without the whitespace between top-level
// elements (before a restarted stream's header included), and with every
// byte of the elements themselves, whitespace inside them too.
func TestTapDropsWhitespace(t *testing.T) {
	in := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'>\n  " +
		"<stream:features><mechanisms xmlns='" + nsSASL + "'>\n <mechanism>PLAIN</mechanism></mechanisms></stream:features>\r\n\t" +
		"<success xmlns='" + nsSASL + "'/> \n" +
		"  <stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'> " +
		"<iq type='result' id='b'><bind xmlns='" + nsBind + "'><jid> a@b/c </jid></bind></iq>\n\n" +
		"<message><body>x\n y</body></message>   "
	want := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'>" +
		"<stream:features><mechanisms xmlns='" + nsSASL + "'>\n <mechanism>PLAIN</mechanism></mechanisms></stream:features>" +
		"<success xmlns='" + nsSASL + "'/>" +
		"<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'>" +
		"<iq type='result' id='b'><bind xmlns='" + nsBind + "'><jid> a@b/c </jid></bind></iq>" +
		"<message><body>x\n y</body></message>"
	for step := 1; step <= len(in); step++ {
		tc := newTapConn(nil, nil, slog.New(slog.DiscardHandler))
		var got []byte
		for i := 0; i < len(in); i += step {
			chunk := []byte(in[i:min(i+step, len(in))])
			n := tc.observeIn(chunk)
			got = append(got, chunk[:n]...)
		}
		if string(got) != want {
			t.Fatalf("step %d: the decoder gets\n%q\nwant\n%q", step, got, want)
		}
		if tc.inDead {
			t.Fatalf("step %d: the tap lost the stream", step)
		}
	}
}

// TestClassifyKeepsTheCause: a negotiation that fails after the server
// offered mechanisms, before one was started, is blamed on the mechanisms
// only when that is what failed.
func TestClassifyKeepsTheCause(t *testing.T) {
	obs := &observed{mechs: []string{"SCRAM-SHA-1"}}
	err := classify(t.Context(), phaseNegotiate, errors.New("xmpp: received invalid feature list of type xml.CharData"), obs)
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "invalid feature list") || strings.Contains(err.Error(), "in common") {
		t.Errorf("unreadable features classified as %q", err)
	}
	err = classify(t.Context(), phaseNegotiate, errors.New("xmpp: no matching SASL mechanisms found"), obs)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "no SASL mechanism in common, server offers [SCRAM-SHA-1]") {
		t.Errorf("no common mechanism classified as %q", err)
	}
}
