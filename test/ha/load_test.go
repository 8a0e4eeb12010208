package ha

import (
	"flag"
	"testing"

	"crier/internal/crierproc"
	"crier/internal/xmpptest"
)

var events = flag.Int("events", 10000, "JetStream events pushed in TestFailoverUnderLoad")

// TestFailoverUnderLoad runs FailoverUnderLoad on the mini server: 10,000
// events, the leader SIGKILLed, a NATS node restarted; nothing lost, the
// duplicates bounded and recognisable; one answer per !ping in the room
// before and after, the first within 10 s of the kill.
func TestFailoverUnderLoad(t *testing.T) {
	srv := crierproc.StartMini(t, "bob", "alice")
	res := FailoverUnderLoad(t, LoadScenario{
		Events: *events, XMPP: srv.XMPP, Receiver: "bob@localhost",
		Dial:       func(t *testing.T) *xmpptest.Client { return srv.Dial(t, "bob") },
		Room:       room,
		DialPinger: func(t *testing.T) *xmpptest.Client { return srv.Dial(t, "alice") },
	})
	t.Logf("mini server: %d events, %d duplicates, the room answered %v after the kill", res.Events, res.Duplicates, res.Answered)
}
