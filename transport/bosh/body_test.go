package bosh

import (
	"testing"

	"crier/internal/boshwire"
	"crier/internal/xmlsplit"
)

func TestStripStartTLS(t *testing.T) {
	in := `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>` +
		`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`
	got := string(stripStartTLS([]byte(in)))
	want := `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if got := string(stripStartTLS([]byte(want))); got != want {
		t.Fatalf("features without starttls changed: %s", got)
	}
}

// FuzzClientBody checks what the client does to a parsed response body on
// top of the parser (fuzzed in internal/boshwire): stripping <starttls/>
// from the features leaves one element, never a larger one.
func FuzzClientBody(f *testing.F) {
	f.Add([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' sid='s' rid='1' xmlns:stream='http://etherx.jabber.org/streams'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features></body>`))
	f.Add([]byte(`<body type='terminate' condition='remote-stream-error' xmlns='http://jabber.org/protocol/httpbind'><stream:error><conflict/></stream:error></body>`))
	f.Add([]byte(`<?xml version='1.0'?><body xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'/></body>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := boshwire.ParseBody(data)
		if err != nil {
			return
		}
		for _, c := range b.Children {
			if c.Name.Local != "features" {
				continue
			}
			raw := stripStartTLS(c.Raw)
			if len(raw) > len(c.Raw) {
				t.Fatalf("stripping grew %q", c.Raw)
			}
			var s xmlsplit.Splitter
			evs, err := s.Feed(append([]byte("<stream:stream>"), raw...))
			if err != nil || len(evs) != 2 || evs[1].Kind != xmlsplit.Element {
				t.Fatalf("stripped %q is not one element: %v %v", raw, evs, err)
			}
		}
		_ = StreamCondition(b.Get("condition"))
	})
}
