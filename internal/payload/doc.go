// Package payload reads the payloads crier turns into messages — plain
// text, or one JSON object of the shape the NATS relay and the webhooks
// share (title, body, severity, url, id, to, type) — and renders them
// through text/template with a bounded, side-effect-free function set.
//
//	p, err := payload.Parse(data, payload.FormatJSON, 0)
//	t := template.Must(template.New("x").Funcs(payload.Funcs()).Parse(payload.DefaultJSONTemplate))
//	body, err := payload.Render(t, p) // "[WARN] Disk full\n95% on db1"
//
// It sits in the bottom tier: plugins import it, it imports only rules
// (for the template functions) and the standard library.
package payload
