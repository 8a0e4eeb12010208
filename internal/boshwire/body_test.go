package boshwire

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"crier/internal/xmlsplit"
)

func TestParseBody(t *testing.T) {
	b, err := ParseBody([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' xmlns:x='urn:xmpp:xbosh' sid='s' x:restart='true' rid='7'>` +
		` <message xmlns='jabber:client'><body>a &amp; b</body></message><stream:features xmlns:stream='http://etherx.jabber.org/streams'/></body>`))
	if err != nil {
		t.Fatal(err)
	}
	if rid, _ := b.RID(); rid != 7 || b.Get("xmpp:restart") != "true" || len(b.Children) != 2 {
		t.Fatalf("parsed %+v", b)
	}
	if !strings.HasPrefix(string(b.Children[0].Raw), "<message") || !IsStanza(b.Children[0].Name) {
		t.Fatalf("child 0: %s", b.Children[0].Raw)
	}
	if n := b.Children[1].Name; n.Space != "stream" || n.Local != "features" || IsStanza(n) {
		t.Fatalf("child 1: %+v", n)
	}
	for _, bad := range []string{"", "<body/>", "<body xmlns='http://jabber.org/protocol/httpbind'>text</body>",
		"<body xmlns='http://jabber.org/protocol/httpbind'><!-- c --></body>", "<body xmlns='http://jabber.org/protocol/httpbind'><a></body>",
		"<body xmlns='http://jabber.org/protocol/httpbind'/><a/>", "<?php x?><body xmlns='http://jabber.org/protocol/httpbind'/>",
		"<b xmlns='http://jabber.org/protocol/httpbind'/>"} {
		if _, err := ParseBody([]byte(bad)); !errors.Is(err, ErrBody) {
			t.Errorf("%q: got %v, want ErrBody", bad, err)
		}
	}
}

func TestRIDAndIntAttr(t *testing.T) {
	for _, s := range []string{"", "0", "-1", "x", "9007199254740992"} {
		if _, err := ParseRID(s); !errors.Is(err, ErrBody) {
			t.Errorf("ParseRID(%q): got %v, want ErrBody", s, err)
		}
	}
	if v, err := ParseRID("9007199254740991"); err != nil || v != MaxRID {
		t.Errorf("ParseRID(max) = %d, %v", v, err)
	}
	b := &Body{Attr: map[string]string{"wait": " 30 ", "hold": "-1", "polling": "x"}}
	if _, err := b.RID(); !errors.Is(err, ErrBody) {
		t.Errorf("RID without rid: %v", err)
	}
	for k, want := range map[string]int{"wait": 30, "hold": 7, "polling": 7, "missing": 7} {
		if got := b.IntAttr(k, 7); got != want {
			t.Errorf("IntAttr(%q) = %d, want %d", k, got, want)
		}
	}
}

func TestWithClientNS(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<message to='a'><body>x</body></message>", "<message xmlns='jabber:client' to='a'><body>x</body></message>"},
		{"<iq/>", "<iq xmlns='jabber:client'/>"},
		{"<presence xmlns='jabber:server'/>", "<presence xmlns='jabber:server'/>"},
		{"<sm:r xmlns:sm='urn:xmpp:sm:3'/>", "<sm:r xmlns:sm='urn:xmpp:sm:3'/>"},
	} {
		var s xmlsplit.Splitter
		evs, err := s.Feed([]byte("<stream:stream>" + tc.in))
		if err != nil || len(evs) != 2 {
			t.Fatalf("%q: %v %v", tc.in, evs, err)
		}
		if got := string(WithClientNS(evs[1])); got != tc.want {
			t.Errorf("WithClientNS(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsStanza(t *testing.T) {
	for n, want := range map[xml.Name]bool{
		{Local: "message"}: true, {Local: "presence"}: true, {Local: "iq"}: true,
		{Space: "x", Local: "iq"}: false, {Local: "features"}: false,
	} {
		if got := IsStanza(n); got != want {
			t.Errorf("IsStanza(%+v) = %v", n, got)
		}
	}
}

const ns = "xmlns='http://jabber.org/protocol/httpbind'"

// FuzzParseBody checks that every child of a parsed body stands alone: it is
// one element to xmlsplit and parses again as the only child of a body.
func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' sid='s' rid='1' xmlns:stream='http://etherx.jabber.org/streams'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features></body>`))
	f.Add([]byte(`<body type='terminate' condition='remote-stream-error' xmlns='http://jabber.org/protocol/httpbind'><stream:error><conflict/></stream:error></body>`))
	f.Add([]byte(`<?xml version='1.0'?><body xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'/></body>`))
	f.Add([]byte("<body rid='1' " + ns + "><message xmlns='jabber:client'><body>x</body></message></body>"))
	f.Add([]byte("<?xml version='1.0'?><body rid='2' sid='s' type='terminate' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' " + ns + "/>"))
	f.Add([]byte("<b:body xmlns:b='http://jabber.org/protocol/httpbind' rid='3'><a/> <c>t</c></b:body>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBody(data)
		if err != nil {
			if !errors.Is(err, ErrBody) {
				t.Fatalf("error %v does not wrap ErrBody", err)
			}
			return
		}
		for _, c := range b.Children {
			var s xmlsplit.Splitter
			evs, err := s.Feed(append([]byte("<stream:stream>"), c.Raw...))
			if err != nil || len(evs) != 2 || evs[1].Kind != xmlsplit.Element {
				t.Fatalf("child %q is not one element: %v %v", c.Raw, evs, err)
			}
			wrapped := append([]byte("<body "+ns+">"), c.Raw...)
			wrapped = append(wrapped, "</body>"...)
			b2, err := ParseBody(wrapped)
			if err != nil || len(b2.Children) != 1 {
				t.Fatalf("child %q does not stand alone: %v", c.Raw, err)
			}
			_ = IsStanza(c.Name)
		}
		if _, err := b.RID(); err != nil && !errors.Is(err, ErrBody) {
			t.Fatalf("RID error %v does not wrap ErrBody", err)
		}
		_ = b.IntAttr("wait", 0)
	})
}

func TestUintAttr(t *testing.T) {
	b := &Body{Attr: map[string]string{"ok": "30", "zero": "0", "sp": " 30", "neg": "-1", "plus": "+5",
		"x": "1x", "empty": "", "big": "2147483648", "max": "2147483647", "long": "00000000001"}}
	for _, tc := range []struct {
		k       string
		v       int
		present bool
		bad     bool
	}{
		{"ok", 30, true, false}, {"zero", 0, true, false}, {"max", 1<<31 - 1, true, false},
		{"missing", 0, false, false},
		{"sp", 0, true, true}, {"neg", 0, true, true}, {"plus", 0, true, true}, {"x", 0, true, true},
		{"empty", 0, true, true}, {"big", 0, true, true}, {"long", 0, true, true},
	} {
		v, present, err := b.UintAttr(tc.k)
		if (err != nil) != tc.bad || present != tc.present || (!tc.bad && v != tc.v) {
			t.Errorf("UintAttr(%q) = %d, %v, %v; want %d, %v, bad=%v", tc.k, v, present, err, tc.v, tc.present, tc.bad)
		}
		if tc.bad && !errors.Is(err, ErrBody) {
			t.Errorf("UintAttr(%q): error %v does not wrap ErrBody", tc.k, err)
		}
	}
}
