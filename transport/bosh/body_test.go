package bosh

import (
	"strings"
	"testing"

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

func TestCutterRestart(t *testing.T) {
	stream := `<?xml version="1.0" encoding="UTF-8"?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.test'>` +
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>` +
		`<?xml version="1.0" encoding="UTF-8"?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.test'>` +
		`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq></stream:stream>`
	want := []xmlsplit.Kind{xmlsplit.StreamStart, xmlsplit.Element, xmlsplit.StreamStart, xmlsplit.Element, xmlsplit.StreamEnd}
	for step := 1; step <= len(stream); step++ {
		var c cutter
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

func TestParseBody(t *testing.T) {
	b, err := parseBody([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' xmlns:x='urn:xmpp:xbosh' sid='s' x:restart='true' rid='7'>` +
		` <message xmlns='jabber:client'><body>a &amp; b</body></message><stream:features xmlns:stream='http://etherx.jabber.org/streams'/></body>`))
	if err != nil {
		t.Fatal(err)
	}
	if rid, _ := b.rid(); rid != 7 || b.get("xmpp:restart") != "true" || len(b.children) != 2 {
		t.Fatalf("parsed %+v", b)
	}
	if !strings.HasPrefix(string(b.children[0].raw), "<message") || !isStanza(b.children[0].name) {
		t.Fatalf("child 0: %s", b.children[0].raw)
	}
	for _, bad := range []string{"", "<body/>", "<body xmlns='http://jabber.org/protocol/httpbind'>text</body>",
		"<body xmlns='http://jabber.org/protocol/httpbind'><!-- c --></body>", "<body xmlns='http://jabber.org/protocol/httpbind'><a></body>"} {
		if _, err := parseBody([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzClientBody(f *testing.F) {
	f.Add([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' sid='s' rid='1' xmlns:stream='http://etherx.jabber.org/streams'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features></body>`))
	f.Add([]byte(`<body type='terminate' condition='remote-stream-error' xmlns='http://jabber.org/protocol/httpbind'><stream:error><conflict/></stream:error></body>`))
	f.Add([]byte(`<?xml version='1.0'?><body xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'/></body>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBody(data)
		if err != nil {
			return
		}
		for _, c := range b.children {
			raw := c.raw
			if c.name.Local == "features" {
				raw = stripStartTLS(raw)
				if len(raw) > len(c.raw) {
					t.Fatalf("stripping grew %q", c.raw)
				}
			}
			var s xmlsplit.Splitter
			evs, err := s.Feed(append([]byte("<stream:stream>"), raw...))
			if err != nil || len(evs) != 2 || evs[1].Kind != xmlsplit.Element {
				t.Fatalf("child %q is not one element: %v %v", raw, evs, err)
			}
		}
		_ = StreamCondition(b.get("condition"))
	})
}
