package boshwire

import (
	"testing"

	"crier/internal/xmlsplit"
)

func TestCutterRestart(t *testing.T) {
	stream := `<?xml version="1.0" encoding="UTF-8"?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.test'>` +
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>` +
		`<?xml version="1.0" encoding="UTF-8"?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.test'>` +
		`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq></stream:stream>`
	want := []xmlsplit.Kind{xmlsplit.StreamStart, xmlsplit.Element, xmlsplit.StreamStart, xmlsplit.Element, xmlsplit.StreamEnd}
	for step := 1; step <= len(stream); step++ {
		var c Cutter
		var got []xmlsplit.Kind
		for i := 0; i < len(stream); i += step {
			evs, err := c.Feed([]byte(stream[i:min(i+step, len(stream))]))
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			for _, ev := range evs {
				got = append(got, ev.Kind)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: got %v, want %v", step, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("step %d: got %v, want %v", step, got, want)
			}
		}
	}
}

func TestHeaderIndex(t *testing.T) {
	for _, tc := range []struct {
		data string
		from int
		want int
	}{
		{"<a/><stream:stream xmlns='jabber:client'>", 0, 4},
		{"<stream:stream>", 0, 0},
		{"<stream:stream/>", 0, 0},
		{"<stream:stream\n", 0, 0},
		{"<stream:stream", 0, 0},                    // the mark ends the data
		{"<stream:streams/><stream:stream>", 0, 17}, // a longer name is no header
		{"<stream:stream><stream:stream>", 1, 15},
		{"<stream:features/>", 0, -1},
		{"", 0, -1},
	} {
		if got := HeaderIndex([]byte(tc.data), tc.from); got != tc.want {
			t.Errorf("HeaderIndex(%q, %d) = %d, want %d", tc.data, tc.from, got, tc.want)
		}
	}
}
