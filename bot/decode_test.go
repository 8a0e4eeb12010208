package bot

import (
	"encoding/xml"
	"reflect"
	"strings"
	"testing"
)

// TestReadStanzaMatchesDecoder checks the hand-written stanza reader against
// encoding/xml's reflection decoding of the same struct.
func TestReadStanzaMatchesDecoder(t *testing.T) {
	for _, raw := range []string{
		`<message xmlns='jabber:client' from='a@b/c' to='d@e' type='chat' id='1'><body>hi &amp; bye</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message xmlns='jabber:client' from='r@muc/n' type='groupchat'><body xml:lang='en'>one</body><body xml:lang='de'>eins</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>`,
		`<message xmlns='jabber:client' from='r@muc' type='groupchat'><subject>topic <b>x</b></subject></message>`,
		`<message xmlns='jabber:client' type='error' id='m1'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>slow down</text></error></message>`,
		`<presence xmlns='jabber:client' from='r@muc/bot' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none' nick='x'><reason>spam</reason><actor nick='mod'/></item><status code='307'/><status code='110'/></x></presence>`,
		`<presence xmlns='jabber:client' from='r@muc/bot'><x xmlns='jabber:x:delay'/><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator' jid='bot@h/r'/><status code='201'/></x></presence>`,
	} {
		var want inStanza
		if err := xml.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatalf("reference decode %s: %v", raw, err)
		}
		d := xml.NewDecoder(strings.NewReader(raw))
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		start := tok.(xml.StartElement)
		var got inStanza
		if err := readStanza(d, &start, &got); err != nil {
			t.Fatalf("readStanza %s: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("readStanza(%s)\n got  %+v\n want %+v", raw, got, want)
		}
	}
}

func TestReadStanzaTruncated(t *testing.T) {
	raw := `<message xmlns='jabber:client'><body>never ends`
	d := xml.NewDecoder(strings.NewReader(raw))
	tok, _ := d.Token()
	start := tok.(xml.StartElement)
	var st inStanza
	if err := readStanza(d, &start, &st); err == nil {
		t.Fatal("no error for a truncated stanza")
	}
}
