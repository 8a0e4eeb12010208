package bosh_test

import (
	"runtime"
	"testing"

	"crier/internal/miniserver/boshcm"
	"crier/transport/bosh"
)

func TestLoginAndMessages(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHub(t)
	srv, cm := startCM(t, h, boshcm.Config{}, nil)
	alice := login(t, srv.URL, "alice", "apass", bosh.Config{})
	bob := login(t, srv.URL, "bob", "bpass", bosh.Config{})
	alice.send(t, "bob@"+domain, "hello bob")
	bob.expect(t, "hello bob")
	bob.send(t, "alice@"+domain, "hi alice")
	alice.expect(t, "hi alice")
	if err := alice.stop(t); err != nil {
		t.Errorf("alice Serve: %v", err)
	}
	if err := bob.stop(t); err != nil {
		t.Errorf("bob Serve: %v", err)
	}
	_ = cm.Close()
	srv.Close()
	checkGoroutines(t, before)
}
