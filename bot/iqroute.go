package bot

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/plugins"
)

// Plugins' iq handlers and disco nodes. mellium answers service-unavailable
// to every iq get or set whose handler returned without writing an answer
// through the handler's own writer (session.go, responseChecker), so an
// answer cannot be written later from another goroutine. The handler
// therefore runs on a goroutine of its own (a panic there is contained)
// while the reader waits for it at most pluginIQWait; a handler slower than
// that gets resource-constraint and its late answer is dropped and
// counted. Plugins keep slow work (network, long disk writes) out of their
// iq handlers.

const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	// pluginIQWait is how long the session's reader waits for a plugin's
	// iq handler.
	pluginIQWait = 2 * time.Second
	// maxPluginIQ bounds the iq handlers running at once; more are
	// answered resource-constraint.
	maxPluginIQ = 64
	// maxIQPayload bounds the payload handed to a plugin.
	maxIQPayload = 256 << 10
)

type iqKey struct {
	typ  string
	name xml.Name
}

type iqRoute struct {
	owner   *runningPlugin
	feature string
	h       plugins.IQHandler
}

type nodeRoute struct {
	owner    *runningPlugin
	d        plugins.DiscoNode
	features []string
}

// iqRouter holds the plugins' registrations.
type iqRouter struct {
	mu     sync.RWMutex
	routes map[iqKey]iqRoute
	nodes  map[string]nodeRoute
	slots  chan struct{}
}

func newIQRouter() *iqRouter {
	return &iqRouter{routes: map[iqKey]iqRoute{}, nodes: map[string]nodeRoute{}, slots: make(chan struct{}, maxPluginIQ)}
}

func (r *iqRouter) add(k iqKey, rt iqRoute) {
	r.mu.Lock()
	r.routes[k] = rt
	r.mu.Unlock()
}

func (r *iqRouter) addNode(node string, nr nodeRoute) {
	r.mu.Lock()
	r.nodes[node] = nr
	r.mu.Unlock()
}

// removeOwner drops every registration of one plugin instance.
func (r *iqRouter) removeOwner(rp *runningPlugin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.routes {
		if v.owner == rp {
			delete(r.routes, k)
		}
	}
	for k, v := range r.nodes {
		if v.owner == rp {
			delete(r.nodes, k)
		}
	}
}

// ForFeatures lists the plugins' features in the bot's own disco#info
// (info.FeatureIter, given to the mux).
func (r *iqRouter) ForFeatures(node string, f func(info.Feature) error) error {
	if node != "" {
		return nil
	}
	r.mu.RLock()
	seen := map[string]bool{}
	for _, v := range r.routes {
		if v.feature != "" {
			seen[v.feature] = true
		}
	}
	for _, v := range r.nodes {
		for _, ft := range v.features {
			seen[ft] = true
		}
	}
	r.mu.RUnlock()
	list := make([]string, 0, len(seen))
	for k := range seen {
		list = append(list, k)
	}
	sort.Strings(list)
	for _, v := range list {
		if err := f(info.Feature{Var: v}); err != nil {
			return err
		}
	}
	return nil
}

// pluginIQ reads an iq get or set far enough to see its child; when a
// plugin handles it, it is read whole and handed over (true). Otherwise
// the tokens read are given back in front of t for the mux.
func (h *handler) pluginIQ(t xmlstream.TokenReadEncoder, start *xml.StartElement) (bool, xmlstream.TokenReadEncoder) {
	b := h.b
	var pre []xml.Token
	var child xml.StartElement
	for {
		tok, err := t.Token()
		if err != nil {
			return false, rewind(t, pre)
		}
		tok = xml.CopyToken(tok)
		pre = append(pre, tok)
		if se, ok := tok.(xml.StartElement); ok {
			child = se
			break
		}
		if _, ok := tok.(xml.EndElement); ok {
			return false, rewind(t, pre) // an iq without a child
		}
	}
	typ := attrValue(*start, "type")
	b.iqr.mu.RLock()
	rt, isRoute := b.iqr.routes[iqKey{typ: typ, name: child.Name}]
	var nr nodeRoute
	isNode := false
	if typ == "get" && (child.Name.Space == nsDiscoInfo || child.Name.Space == nsDiscoItems) && child.Name.Local == "query" {
		nr, isNode = b.iqr.nodes[attrValue(child, "node")]
		isNode = isNode && attrValue(child, "node") != ""
	}
	b.iqr.mu.RUnlock()
	if !isRoute && !isNode {
		return false, rewind(t, pre)
	}
	// Read the child whole (re-encoded: the mellium stream hands tokens,
	// not bytes), then the rest of the iq.
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	err := enc.EncodeToken(child)
	depth := 1
	for err == nil && depth > 0 {
		var tok xml.Token
		if tok, err = t.Token(); err != nil {
			break
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
		if buf.Len() > maxIQPayload {
			err = errTooLarge
			continue
		}
		err = enc.EncodeToken(tok)
	}
	if err == nil {
		err = enc.Flush()
	}
	_ = skip(t) // the iq's end
	iq := plugins.IQ{ID: attrValue(*start, "id"), From: attrValue(*start, "from"), To: attrValue(*start, "to"), Type: typ, Payload: buf.Bytes(), Name: child.Name}
	if iq.To == "" {
		iq.To = h.jid.String()
	}
	if err != nil {
		b.met.rejected.WithLabelValues("bad_iq").Inc()
		b.answerIQ(t, iq, nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return true, nil
	}
	owner := rt.owner
	if isNode {
		owner = nr.owner
	}
	select {
	case b.iqr.slots <- struct{}{}:
	default:
		b.hm.pluginIQ.WithLabelValues(owner.name, "busy").Inc()
		b.answerIQ(t, iq, nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
		return true, nil
	}
	type answer struct {
		res []byte
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		defer func() { <-b.iqr.slots }()
		var res []byte
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					b.log.Error("plugin panicked answering an iq; plugin disabled", "plugin", owner.name, "panic", p, "stack", string(debug.Stack()))
					b.hm.pluginIQ.WithLabelValues(owner.name, "panic").Inc()
					b.plugins.fail(owner, "panicked")
					err = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
				}
			}()
			if isNode {
				res, err = discoAnswer(nr.d, iq, child)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), pluginIQWait)
			defer cancel()
			res, err = rt.h(ctx, iq)
		}()
		answered <- answer{res, err}
	}()
	// A little longer than the handler's own time limit, so that a handler
	// that watches its context answers itself.
	timer := time.NewTimer(pluginIQWait + 500*time.Millisecond)
	defer timer.Stop()
	select {
	case a := <-answered:
		result := "result"
		if a.err != nil {
			result = "error"
		}
		b.hm.pluginIQ.WithLabelValues(owner.name, result).Inc()
		b.answerIQ(t, iq, a.res, a.err)
	case <-timer.C:
		b.hm.pluginIQ.WithLabelValues(owner.name, "timeout").Inc()
		b.log.Warn("plugin iq handler too slow; answered resource-constraint", "plugin", owner.name, "query", iq.Name.Space, "after", pluginIQWait)
		b.answerIQ(t, iq, nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
	}
	return true, nil
}

var errTooLarge = errors.New("bot: iq payload too large")

// rewind puts read tokens back in front of t.
func rewind(t xmlstream.TokenReadEncoder, pre []xml.Token) xmlstream.TokenReadEncoder {
	readers := make([]xml.TokenReader, 0, len(pre)+1)
	for _, tok := range pre {
		readers = append(readers, xmlstream.Token(tok))
	}
	readers = append(readers, t)
	return struct {
		xml.TokenReader
		xmlstream.Encoder
	}{xmlstream.MultiReader(readers...), t}
}

// answerIQ writes the result (res: the raw child, or nil) or error of a
// request handed to a plugin.
func (b *Bot) answerIQ(w xmlstream.TokenWriter, req plugins.IQ, res []byte, err error) {
	to, _ := jid.Parse(req.From)
	// A component answers from the address asked: it has many, and its
	// server refuses a stanza without one. A client's server sets it.
	var from jid.JID
	if b.component() {
		from, _ = jid.Parse(req.To)
	}
	var out xml.TokenReader
	var ie *plugins.IQError
	if errors.As(err, &ie) {
		raw := append(append([]byte(nil), ie.Payload...), ie.Element()...)
		r, perr := rawElements(raw)
		if perr == nil {
			out = stanza.IQ{ID: req.ID, From: from, To: to, Type: stanza.ErrorIQ}.Wrap(r)
			if _, werr := xmlstream.Copy(w, out); werr != nil {
				b.log.Warn("could not answer an iq", "to", req.From, "err", werr)
			}
			return
		}
		b.log.Error("plugin iq error has malformed XML; answering its condition only", "query", req.Name.Space, "err", perr)
		err = stanza.Error{Type: stanza.ErrorType(ie.Type), Condition: stanza.Condition(ie.Condition)}
	}
	if err != nil {
		var se stanza.Error
		if !errors.As(err, &se) {
			b.log.Warn("plugin iq handler failed", "from", req.From, "query", req.Name.Space, "err", err)
			se = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		out = stanza.IQ{ID: req.ID, From: from, To: to, Type: stanza.ErrorIQ}.Wrap(se.TokenReader())
	} else {
		var inner xml.TokenReader
		if len(res) > 0 {
			r, perr := rawElement(res)
			if perr != nil {
				b.log.Error("plugin iq handler returned malformed XML; answering internal-server-error", "query", req.Name.Space, "err", perr)
				se := stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
				out = stanza.IQ{ID: req.ID, From: from, To: to, Type: stanza.ErrorIQ}.Wrap(se.TokenReader())
			} else {
				inner = r
			}
		}
		if out == nil {
			out = stanza.IQ{ID: req.ID, From: from, To: to, Type: stanza.ResultIQ}.Wrap(inner)
		}
	}
	if _, werr := xmlstream.Copy(w, out); werr != nil {
		b.log.Warn("could not answer an iq", "to", req.From, "err", werr)
	}
}

// rawElement turns one XML element's bytes into tokens, checking that it
// is well formed and a single element.
func rawElement(raw []byte) (xml.TokenReader, error) { return rawTokens(raw, false) }

// rawElements is rawElement for a sequence of elements.
func rawElements(raw []byte) (xml.TokenReader, error) { return rawTokens(raw, true) }

func rawTokens(raw []byte, many bool) (xml.TokenReader, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var toks []xml.Token
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 && len(toks) > 0 && !many {
				return nil, fmt.Errorf("more than one element")
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.ProcInst, xml.Directive, xml.Comment:
			continue
		case xml.CharData:
			if depth == 0 {
				continue
			}
		}
		toks = append(toks, xml.CopyToken(tok))
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("no element")
	}
	i := 0
	return xmlstream.ReaderFunc(func() (xml.Token, error) {
		if i >= len(toks) {
			return nil, io.EOF
		}
		i++
		return toks[i-1], nil
	}), nil
}

// discoAnswer answers disco#info or disco#items on a plugin's node.
func discoAnswer(d plugins.DiscoNode, iq plugins.IQ, q xml.StartElement) ([]byte, error) {
	node := attrValue(q, "node")
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	start := xml.StartElement{Name: xml.Name{Space: q.Name.Space, Local: "query"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}}
	_ = enc.EncodeToken(start)
	if q.Name.Space == nsDiscoInfo {
		ids, feats, ok := d.Info(iq.From, node)
		if !ok {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
		for _, id := range ids {
			el := xml.StartElement{Name: xml.Name{Local: "identity"}, Attr: []xml.Attr{
				{Name: xml.Name{Local: "category"}, Value: id[0]}, {Name: xml.Name{Local: "type"}, Value: id[1]}, {Name: xml.Name{Local: "name"}, Value: id[2]}}}
			_ = enc.EncodeToken(el)
			_ = enc.EncodeToken(el.End())
		}
		for _, f := range feats {
			el := xml.StartElement{Name: xml.Name{Local: "feature"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: f}}}
			_ = enc.EncodeToken(el)
			_ = enc.EncodeToken(el.End())
		}
	} else {
		for _, it := range d.Items(iq.From, node) {
			if it.JID == "" {
				it.JID = iq.To // the bot itself
			}
			attrs := []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: it.JID}}
			if it.Node != "" {
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "node"}, Value: it.Node})
			}
			if it.Name != "" {
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: it.Name})
			}
			el := xml.StartElement{Name: xml.Name{Local: "item"}, Attr: attrs}
			_ = enc.EncodeToken(el)
			_ = enc.EncodeToken(el.End())
		}
	}
	_ = enc.EncodeToken(start.End())
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
