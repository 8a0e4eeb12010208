package natsrelay

import (
	"strings"
	"unicode/utf8"

	"crier/internal/payload"
)

// Reasons a NATS message becomes a dead letter. The reason travels in the
// Crier-Reason header of the dead letter and labels the dead-letter metric.
const (
	// ReasonOversized is a payload larger than the relay's max_bytes.
	ReasonOversized = payload.ReasonOversized
	// ReasonInvalidUTF8 is a payload that is not valid UTF-8.
	ReasonInvalidUTF8 = payload.ReasonInvalidUTF8
	// ReasonInvalidJSON is a payload that is not one JSON object, for a
	// relay whose format is "json".
	ReasonInvalidJSON = payload.ReasonInvalidJSON
	// ReasonInvalidField is a JSON object whose to or type field has the
	// wrong shape.
	ReasonInvalidField = payload.ReasonInvalidField
	// ReasonTemplate is a template that failed on the message.
	ReasonTemplate = payload.ReasonTemplate
	// ReasonEmpty is a message that renders to an empty body, or that has
	// no recipient.
	ReasonEmpty = payload.ReasonEmpty
)

// Payload formats, the values of nats.relay.format.
const (
	// FormatText relays the payload as the message body.
	FormatText = payload.FormatText
	// FormatJSON reads the payload as a JSON object (see Payload).
	FormatJSON = payload.FormatJSON
)

// DefaultMaxBytes is the largest payload a relay accepts unless its
// max_bytes says otherwise.
const DefaultMaxBytes = payload.DefaultMaxBytes

// PayloadError says why a payload cannot be relayed (internal/payload's
// Error).
type PayloadError = payload.Error

// Payload is a NATS message's payload, read by ParsePayload
// (internal/payload's Payload: the shape the webhooks read too).
type Payload = payload.Payload

// messageTypes are the XMPP message types a request may ask for.
var messageTypes = map[string]bool{"chat": true, "groupchat": true, "headline": true, "normal": true}

// ParsePayload checks and reads a payload: it must be at most maxBytes long
// (DefaultMaxBytes when maxBytes is not positive) and valid UTF-8, and for
// FormatJSON one JSON object. The error is a *PayloadError.
func ParsePayload(data []byte, format string, maxBytes int) (Payload, error) {
	return payload.Parse(data, format, maxBytes)
}

// SanitizeToken turns s into one NATS subject token: every character other
// than a letter, a digit, '-' or '_' becomes '_', the result is at most 64
// bytes, and an empty s gives "_".
func SanitizeToken(s string) string {
	const maxToken = 64
	var b strings.Builder
	for _, r := range s {
		if b.Len()+utf8.RuneLen(r) > maxToken {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r > 0x7f && isLetterOrDigit(r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
