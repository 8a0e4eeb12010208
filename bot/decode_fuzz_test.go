package bot

import (
	"encoding/xml"
	"strings"
	"testing"
)

// FuzzReadStanza feeds the bot's stanza reader (the hand-written walk that
// replaced reflection) with whatever the server may send inside a
// message or presence: it must return an error or a stanza, never panic,
// and never keep more text than the input had.
func FuzzReadStanza(f *testing.F) {
	for _, s := range []string{
		`<message from='a@b/c' type='chat' id='1'><body>hi</body></message>`,
		`<message type='groupchat' from='r@c/n'><body xml:lang='en'>x</body><body>y</body><subject>s</subject><delay xmlns='urn:xmpp:delay' from='r@c'/></message>`,
		`<presence from='r@c/n'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator' jid='a@b/c' nick='n'><reason>r</reason></item><status code='110'/><status code='x'/></x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='o'/></presence>`,
		`<message type='error' id='e'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>t</text></error></message>`,
		`<message><body><a><b><c/></b></a>t</body><stanza-id xmlns='urn:xmpp:sid:0' id='s' by='r@c'/></message>`,
		`<message><body>` + strings.Repeat("<x>", 100) + `</body></message>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d := xml.NewDecoder(strings.NewReader(in))
		var start *xml.StartElement
		for {
			tok, err := d.Token()
			if err != nil {
				return // not a document the server's parser would pass on
			}
			if se, ok := tok.(xml.StartElement); ok {
				start = &se
				break
			}
		}
		var st inStanza
		if err := readStanza(d, start, &st); err != nil {
			return
		}
		for _, b := range st.Body {
			if len(b.Text) > len(in) {
				t.Fatalf("body of %d bytes from %d bytes of input", len(b.Text), len(in))
			}
		}
	})
}
