package bot

import (
	"encoding/xml"
	"errors"
	"io"
	"strconv"
)

// Namespaces the stanza reader looks for.
const (
	nsDelay    = "urn:xmpp:delay"
	nsOldDelay = "jabber:x:delay"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsOccID    = "urn:xmpp:occupant-id:0"
)

// errTooDeep guards the stanza reader against absurd nesting.
var errTooDeep = errors.New("bot: stanza nested too deeply")

// readStanza fills st from a message or presence: start is its start
// element, r yields the rest of it. It walks the tokens once, keeping what
// the bot reads (body, subject, delay, MUC user data, error) and skipping
// everything else; reflection-based decoding cost the bot a good share of
// its CPU per message.
func readStanza(r xml.TokenReader, start *xml.StartElement, st *inStanza) error {
	st.XMLName = start.Name
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			st.ID = a.Value
		case "from":
			st.From = a.Value
		case "to":
			st.To = a.Value
		case "type":
			st.Type = a.Value
		}
	}
	for {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil // the stanza's end
		case xml.StartElement:
			if err := readChild(r, t, st); err != nil {
				return err
			}
		}
	}
}

func readChild(r xml.TokenReader, t xml.StartElement, st *inStanza) error {
	switch {
	case t.Name.Local == "body" && (t.Name.Space == st.XMLName.Space || t.Name.Space == ""):
		s, err := readText(r)
		st.Body = append(st.Body, langText{Lang: xmlLang(t), Text: s})
		return err
	case t.Name.Local == "subject" && (t.Name.Space == st.XMLName.Space || t.Name.Space == ""):
		s, err := readText(r)
		st.Subject = append(st.Subject, langText{Lang: xmlLang(t), Text: s})
		return err
	case t.Name.Local == "delay" && t.Name.Space == nsDelay:
		st.Delay = &struct{}{}
		st.DelayFrom = attrValue(t, "from")
	case t.Name.Local == "x" && t.Name.Space == nsOldDelay:
		st.OldDly = &struct{}{}
		st.DelayFrom = attrValue(t, "from")
	case t.Name.Local == "x" && t.Name.Space == nsMUCUser:
		st.MUCUser = &mucUserX{}
		return readMUCUser(r, st.MUCUser)
	case t.Name.Local == "error":
		st.Error = &stanzaError{}
		return readError(r, t, st.Error)
	case t.Name.Local == "stanza-id" && t.Name.Space == nsSID:
		// XEP-0359: only the room's (or the own server's) id is trusted;
		// by is checked against the sender when the message is routed.
		st.StanzaIDs = append(st.StanzaIDs, stanzaID{ID: attrValue(t, "id"), By: attrValue(t, "by")})
	case t.Name.Local == "occupant-id" && t.Name.Space == nsOccID:
		st.OccupantID = attrValue(t, "id")
	}
	return skip(r)
}

// attrValue returns the value of t's attribute local (no namespace).
func attrValue(t xml.StartElement, local string) string {
	for _, a := range t.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func xmlLang(t xml.StartElement) string {
	for _, a := range t.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == "xml" || a.Name.Space == "http://www.w3.org/XML/1998/namespace") {
			return a.Value
		}
	}
	return ""
}

// readText returns the element's own character data (not that of nested
// elements, as encoding/xml's ",chardata" does) and consumes its end.
func readText(r xml.TokenReader) (string, error) {
	var buf []byte
	depth := 0
	for {
		tok, err := r.Token()
		if err != nil {
			return string(buf), err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if depth == 0 {
				buf = append(buf, t...)
			}
		case xml.StartElement:
			depth++
			if depth > 64 {
				return "", errTooDeep
			}
		case xml.EndElement:
			if depth == 0 {
				return string(buf), nil
			}
			depth--
		}
	}
}

// skip consumes the rest of the element being read.
func skip(r xml.TokenReader) error {
	depth := 0
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return nil
			}
			depth--
		}
	}
}

func readMUCUser(r xml.TokenReader, x *mucUserX) error {
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			switch t.Name.Local {
			case "status":
				for _, a := range t.Attr {
					if a.Name.Local == "code" {
						if c, err := strconv.Atoi(a.Value); err == nil {
							x.Status = append(x.Status, struct {
								Code int `xml:"code,attr"`
							}{c})
						}
					}
				}
				if err := skip(r); err != nil {
					return err
				}
			case "item":
				var it mucItem
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "affiliation":
						it.Affiliation = a.Value
					case "role":
						it.Role = a.Value
					case "jid":
						it.JID = a.Value
					case "nick":
						it.Nick = a.Value
					}
				}
				if err := readItem(r, &it); err != nil {
					return err
				}
				x.Items = append(x.Items, it)
			default:
				if err := skip(r); err != nil {
					return err
				}
			}
		}
	}
}

func readItem(r xml.TokenReader, it *mucItem) error {
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name.Local == "reason" {
				s, err := readText(r)
				if err != nil {
					return err
				}
				it.Reason = s
				continue
			}
			if err := skip(r); err != nil {
				return err
			}
		}
	}
}

func readError(r xml.TokenReader, start xml.StartElement, e *stanzaError) error {
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			e.Type = a.Value
		}
	}
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			s, err := readText(r)
			if err != nil {
				return err
			}
			if t.Name.Local == "text" {
				e.Text = s
			} else if e.Condition == "" && t.Name.Space == nsStanzas {
				e.Condition = t.Name.Local
			}
		}
	}
}
