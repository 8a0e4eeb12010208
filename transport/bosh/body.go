package bosh

import (
	"bytes"
	"encoding/xml"

	"crier/internal/boshwire"
)

// stripStartTLS removes any <starttls/> child from a raw <stream:features/>
// element. Over BOSH the transport is the HTTP connection: Prosody 0.12 still
// offers (even requires) STARTTLS there, which must not be attempted.
func stripStartTLS(raw []byte) []byte {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	var cuts [][2]int64
	var start int64
	for {
		before := d.InputOffset()
		tok, err := d.RawToken()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "starttls" {
				start = before
			}
		case xml.EndElement:
			if depth == 2 && t.Name.Local == "starttls" {
				cuts = append(cuts, [2]int64{start, d.InputOffset()})
			}
			depth--
		}
	}
	if len(cuts) == 0 {
		return raw
	}
	out := make([]byte, 0, len(raw))
	var from int64
	for _, c := range cuts {
		out = append(out, raw[from:c[0]]...)
		from = c[1]
	}
	return append(out, raw[from:]...)
}

// streamConditions maps XEP-0124 terminal binding conditions to the RFC 6120
// stream error conditions mellium reports.
var streamConditions = map[string]string{
	"bad-request":              "bad-format",
	"host-gone":                "host-gone",
	"host-unknown":             "host-unknown",
	"improper-addressing":      "improper-addressing",
	"internal-server-error":    "internal-server-error",
	"item-not-found":           "connection-timeout",
	"other-request":            "conflict",
	"policy-violation":         "policy-violation",
	"remote-connection-failed": "remote-connection-failed",
	"remote-stream-error":      "undefined-condition",
	"see-other-uri":            "see-other-host",
	"system-shutdown":          "system-shutdown",
	"undefined-condition":      "undefined-condition",
}

// StreamCondition returns the stream error condition that a BOSH terminal
// binding condition is reported as (undefined-condition for unknown ones).
func StreamCondition(boshCondition string) string {
	if c, ok := streamConditions[boshCondition]; ok {
		return c
	}
	return "undefined-condition"
}

// terminateError builds the synthetic stream error for a terminate with the
// given condition.
func terminateError(cond string) []byte {
	return []byte("<stream:error><" + StreamCondition(cond) + " xmlns='" + boshwire.NSStreamErr + "'/>" +
		"<text xmlns='" + boshwire.NSStreamErr + "'>" + textPrefix + boshwire.AttrEscape(cond) + "</text></stream:error>")
}

// textPrefix starts the <text/> of every synthetic stream error, followed by
// the BOSH condition; Condition looks for it.
const textPrefix = "bosh terminate: "

// statusCondition is the legacy XEP-0124 mapping of HTTP errors without a
// usable body.
func statusCondition(code int) string {
	switch code {
	case 400:
		return "bad-request"
	case 403:
		return "policy-violation"
	case 404:
		return "item-not-found"
	case 413:
		return "policy-violation"
	}
	return "undefined-condition"
}
