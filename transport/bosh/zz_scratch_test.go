//go:build scratch

package bosh_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"crier/transport/bosh"
)

func TestScratchPeer(t *testing.T) {
	url := os.Getenv("URL")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := bosh.Dial(ctx, bosh.Config{URL: url, Domain: "localhost", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	me := jid.MustParse("alice@localhost/scratch")
	s, err := xmpp.NewSession(ctx, jid.MustParse("localhost"), me, nc, xmpp.Secure, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Lang: "en", Features: []xmpp.StreamFeature{xmpp.SASL("", "alicepw", sasl.ScramSha1, sasl.Plain), xmpp.BindResource()}}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Log("bound", s.LocalAddr())
	s.Close()
	nc.Close()
}
