package conform

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"crier/internal/boshwire"
)

// ErrCheck is wrapped by every failure a check reports.
var ErrCheck = errors.New("conform: check failed")

// fail returns a check failure.
func fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCheck, fmt.Sprintf(format, args...))
}

// answer is one HTTP response to a BOSH request.
type answer struct {
	status  int
	header  http.Header
	b       *boshwire.Body
	raw     string
	elapsed time.Duration
	err     error
}

// terminate reports whether the answer is a terminate, with cond ("" = any).
func (a answer) terminate(cond string) bool {
	return a.err == nil && a.b != nil && a.b.Get("type") == "terminate" && (cond == "" || a.b.Get("condition") == cond)
}

func (a answer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("HTTP %d after %v: %s", a.status, a.elapsed.Round(time.Millisecond), a.raw)
}

// probe sends raw requests to one connection manager.
type probe struct {
	ctx    context.Context
	t      Target
	client *http.Client
}

// post sends one <body/> and reads the answer.
func (p *probe) post(body string) answer {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.t.URL, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return answer{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(data), elapsed: time.Since(start), err: err}
	if err == nil {
		if a.b, err = boshwire.ParseBody(data); err != nil {
			a.err = fmt.Errorf("HTTP %d, not a <body/>: %q: %w", a.status, shorten(a.raw), err)
		}
	}
	return a
}

// shorten cuts s to at most 200 bytes for a message.
func shorten(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// async sends a request in the background.
func (p *probe) async(body string) <-chan answer {
	ch := make(chan answer, 1)
	go func() { ch <- p.post(body) }()
	return ch
}

// session is one BOSH session driven by hand.
type session struct {
	p      *probe
	sid    string
	rid    uint64 // rid of the next request
	wait   int
	hold   int
	create answer
	keys   []string // remaining keys, the next one last
}

// opts are the creation request's extra attributes, already formatted.
type opts struct {
	wait, hold string // "" = leave out
	extra      string
	keys       int // > 0: use a key sequence of this length (XEP-0124 §15)
}

const ns = "xmlns='" + boshwire.NSHTTPBind + "'"

// startRID is the first rid of a session: random enough for a test.
func startRID() uint64 { return uint64(time.Now().UnixNano()%(1<<40)) + 1<<20 }

// open creates a session; a terminate answer is an error.
func (p *probe) open(o opts) (*session, error) {
	s := &session{p: p, rid: startRID()}
	attrs := ""
	if o.wait != "" {
		attrs += " wait='" + o.wait + "'"
	}
	if o.hold != "" {
		attrs += " hold='" + o.hold + "'"
	}
	if o.keys > 0 {
		k := hex.EncodeToString([]byte(strconv.FormatInt(time.Now().UnixNano(), 10)))
		for range o.keys {
			sum := sha1.Sum([]byte(k))
			k = hex.EncodeToString(sum[:])
			s.keys = append(s.keys, k)
		}
		attrs += " newkey='" + s.keys[len(s.keys)-1] + "'"
		s.keys = s.keys[:len(s.keys)-1]
	}
	a := p.post(fmt.Sprintf("<body rid='%d' to='%s' ver='1.6' xml:lang='en' xmpp:version='1.0' xmlns:xmpp='%s'%s%s %s/>",
		s.rid, p.t.Domain, boshwire.NSXBOSH, attrs, o.extra, ns))
	s.rid++
	s.create = a
	if a.err != nil {
		return nil, fmt.Errorf("session creation: %w", a.err)
	}
	if a.terminate("") || a.b.Get("sid") == "" {
		return nil, fail("session creation refused: %s", a)
	}
	s.sid = a.b.Get("sid")
	s.wait = a.b.IntAttr("wait", 60)
	s.hold = a.b.IntAttr("hold", 1)
	return s, nil
}

// body formats the next request (rid assigned, sid and key set) with extra
// attributes and payload, and moves the rid on.
func (s *session) body(extra, payload string) (string, uint64) {
	rid := s.rid
	s.rid++
	k := ""
	if len(s.keys) > 0 {
		k = " key='" + s.keys[len(s.keys)-1] + "'"
		s.keys = s.keys[:len(s.keys)-1]
	}
	if payload == "" {
		return fmt.Sprintf("<body rid='%d' sid='%s'%s%s %s xmlns:xmpp='%s'/>", rid, s.sid, k, extra, ns, boshwire.NSXBOSH), rid
	}
	return fmt.Sprintf("<body rid='%d' sid='%s'%s%s %s xmlns:xmpp='%s'>%s</body>", rid, s.sid, k, extra, ns, boshwire.NSXBOSH, payload), rid
}

// send sends the next request and waits for its answer.
func (s *session) send(extra, payload string) answer {
	b, _ := s.body(extra, payload)
	return s.p.post(b)
}

// await sends empty requests (one at a time) until a child for which match
// is true arrives, and returns every child seen. It gives up after n
// requests or on a terminate.
func (s *session) await(first answer, n int, match func(boshwire.Child) bool) ([]boshwire.Child, error) {
	var seen []boshwire.Child
	a := first
	for i := 0; ; i++ {
		if a.err != nil {
			return seen, a.err
		}
		for _, c := range a.b.Children {
			seen = append(seen, c)
			if match(c) {
				return seen, nil
			}
		}
		if a.terminate("") {
			return seen, fail("session terminated: %s", a)
		}
		if i >= n {
			return seen, fail("nothing matching after %d requests", n)
		}
		a = s.send("", "")
	}
}

// named matches a child by local name (and a substring of its bytes).
func named(local, contains string) func(boshwire.Child) bool {
	return func(c boshwire.Child) bool {
		return c.Name.Local == local && strings.Contains(string(c.Raw), contains)
	}
}

// login authenticates with SASL PLAIN, restarts the stream (XEP-0206 §5)
// and binds a resource, so that iq pings to the server get answers.
func (s *session) login() error {
	if _, err := s.await(s.create, 3, named("features", "mechanisms")); err != nil {
		return fmt.Errorf("stream features: %w", err)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + s.p.t.User + "\x00" + s.p.t.Password))
	a := s.send("", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+cred+"</auth>")
	if _, err := s.await(a, 3, named("success", "")); err != nil {
		return fmt.Errorf("SASL PLAIN as %s: %w", s.p.t.User, err)
	}
	a = s.send(" to='"+s.p.t.Domain+"' xml:lang='en' xmpp:restart='true'", "")
	if _, err := s.await(a, 3, named("features", "bind")); err != nil {
		return fmt.Errorf("features after the restart: %w", err)
	}
	a = s.send("", "<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>conform</resource></bind></iq>")
	if _, err := s.await(a, 3, named("iq", "bind1")); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// ping is an iq ping to the server with the given id.
func (s *session) ping(id string) string {
	return "<iq xmlns='jabber:client' type='get' id='" + id + "' to='" + s.p.t.Domain + "'><ping xmlns='urn:xmpp:ping'/></iq>"
}

// terminate ends the session (best effort, for clean-up).
func (s *session) terminate() {
	_ = s.send(" type='terminate'", "<presence xmlns='jabber:client' type='unavailable'/>")
}
