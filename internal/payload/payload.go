package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Reasons a payload is refused. The NATS relay puts the reason in the
// Crier-Reason header of a dead letter and labels its metric with it.
const (
	// ReasonOversized is a payload larger than the limit.
	ReasonOversized = "oversized"
	// ReasonInvalidUTF8 is a payload that is not valid UTF-8.
	ReasonInvalidUTF8 = "invalid-utf8"
	// ReasonInvalidJSON is a payload that is not one JSON object, for
	// format "json".
	ReasonInvalidJSON = "invalid-json"
	// ReasonInvalidField is a JSON object whose to or type field has the
	// wrong shape.
	ReasonInvalidField = "invalid-field"
	// ReasonTemplate is a template that failed on the payload.
	ReasonTemplate = "template"
	// ReasonEmpty is a payload that renders to an empty body, or that has
	// no recipient.
	ReasonEmpty = "empty"
)

// Payload formats.
const (
	// FormatText takes the payload as the message body.
	FormatText = "text"
	// FormatJSON reads the payload as a JSON object (see Payload).
	FormatJSON = "json"
)

// DefaultMaxBytes is the largest payload Parse accepts when given no limit.
const DefaultMaxBytes = 64 << 10

// Error says why a payload cannot be used.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Err is the detail.
	Err error
}

// Error returns the reason and the detail.
func (e *Error) Error() string {
	if e.Err == nil {
		return "payload: " + e.Reason
	}
	return "payload: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the detail.
func (e *Error) Unwrap() error { return e.Err }

// Payload is a payload read by Parse.
type Payload struct {
	// Text is the whole payload.
	Text string
	// Title is the JSON field "title", or else "subject".
	Title string
	// Body is the JSON field "body", or else "text", or else "message".
	Body string
	// To is the JSON field "to": one JID or a list of JIDs. When set it
	// replaces the configured recipients.
	To []string
	// Type is the JSON field "type": chat, groupchat, headline or normal.
	// When set it applies to every recipient.
	Type string
	// Severity, URL and ID are the JSON fields "severity", "url" and "id".
	Severity string
	URL      string
	ID       string
	// Fields is the whole JSON object; nil for format "text".
	Fields map[string]any
}

// messageTypes are the XMPP message types a payload may ask for.
var messageTypes = map[string]bool{"chat": true, "groupchat": true, "headline": true, "normal": true}

// Parse checks and reads a payload: it must be at most maxBytes long
// (DefaultMaxBytes when maxBytes is not positive) and valid UTF-8, and for
// FormatJSON one JSON object. The error is an *Error.
func Parse(data []byte, format string, maxBytes int) (Payload, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(data) > maxBytes {
		return Payload{}, &Error{Reason: ReasonOversized, Err: fmt.Errorf("%d bytes, more than %d", len(data), maxBytes)}
	}
	if !utf8.Valid(data) {
		return Payload{}, &Error{Reason: ReasonInvalidUTF8}
	}
	p := Payload{Text: string(data)}
	if format != FormatJSON {
		p.Body = p.Text
		return p, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return Payload{}, &Error{Reason: ReasonInvalidJSON, Err: err}
	}
	if obj == nil {
		return Payload{}, &Error{Reason: ReasonInvalidJSON, Err: errors.New("not a JSON object")}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Payload{}, &Error{Reason: ReasonInvalidJSON, Err: errors.New("data after the JSON object")}
	}
	p.Fields = obj
	p.Title = firstField(obj, "title", "subject")
	p.Body = firstField(obj, "body", "text", "message")
	p.Severity = firstField(obj, "severity")
	p.URL = firstField(obj, "url")
	p.ID = firstField(obj, "id")
	p.Type = firstField(obj, "type")
	if p.Type != "" && !messageTypes[p.Type] {
		return Payload{}, &Error{Reason: ReasonInvalidField, Err: fmt.Errorf("type %q is not chat, groupchat, headline or normal", p.Type)}
	}
	switch to := obj["to"].(type) {
	case nil:
	case string:
		if to != "" {
			p.To = []string{to}
		}
	case []any:
		for _, v := range to {
			s, ok := v.(string)
			if !ok || s == "" {
				return Payload{}, &Error{Reason: ReasonInvalidField, Err: errors.New("to must be a JID or a list of JIDs")}
			}
			p.To = append(p.To, s)
		}
	default:
		return Payload{}, &Error{Reason: ReasonInvalidField, Err: errors.New("to must be a JID or a list of JIDs")}
	}
	return p, nil
}

// firstField returns the first of keys that obj holds, as text.
func firstField(obj map[string]any, keys ...string) string {
	for _, k := range keys {
		if v, ok := obj[k]; ok && v != nil {
			return FieldText(v)
		}
	}
	return ""
}

// FieldText returns a JSON value as text: strings as they are, numbers
// and booleans as written, objects and arrays as compact JSON.
func FieldText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
}
