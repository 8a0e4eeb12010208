package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

func TestInUseNamesTheKey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	_, lerr := net.Listen("tcp", busy)
	if lerr == nil {
		t.Fatal("a second listener on the same port")
	}
	keys := []keyAddr{{"xmpp.address", "127.0.0.1:1"}, {"embedded.http", busy}, {"embedded.tls_address", ""}}
	for _, tc := range []struct {
		name string
		err  error
		keys []keyAddr
		want string
	}{
		{"by port", fmt.Errorf("miniserver: listen http: %w", lerr), keys, "crier: embedded.http " + busy + " is in use, by another program or another crier: stop it or change embedded.http in c.toml"},
		{"text only, one key", errors.New(`embeddednats: not ready: listen tcp 127.0.0.1:4222: bind: address already in use`),
			[]keyAddr{{"nats.url", "127.0.0.1:4222"}}, "crier: nats.url 127.0.0.1:4222 is in use"},
		{"unknown port, several keys", errors.New("address already in use"), keys[:2], "change xmpp.address or embedded.http in c.toml"},
	} {
		got := inUse(tc.err, "c.toml", tc.keys...)
		if !strings.Contains(got.Error(), tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	other := errors.New("permission denied")
	if got := inUse(other, "c.toml", keys...); got != other {
		t.Errorf("another error changed: %v", got)
	}
}
