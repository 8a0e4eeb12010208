package conform

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"crier/internal/boshwire"
)

// Target is the connection manager under test and an account on the server
// behind it.
type Target struct {
	// URL is the BOSH endpoint, such as http://127.0.0.1:5280/http-bind.
	URL string
	// Domain is the XMPP domain (the 'to' of session requests).
	Domain string
	// User and Password are an account's local part and password; the
	// server must allow SASL PLAIN over the connection manager.
	User, Password string
	// Client sends the requests; nil = a client of its own.
	Client *http.Client
}

// Check is one conformance check of XEP-0124/XEP-0206.
type Check struct {
	// ID names the check, such as "rid-out-of-order".
	ID string
	// Section is where the requirement is, such as "XEP-0124 §14.2".
	Section string
	// Rule is the requirement, in a few words.
	Rule string
	run  func(p *probe) error
}

// Result is the outcome of one check.
type Result struct {
	Check
	// Err is nil when the check passed.
	Err error
}

// Run runs every check against t, one after the other, and returns their
// results in the order of Checks.
func Run(ctx context.Context, t Target) []Result {
	client := t.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxConnsPerHost = 0
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
	}
	p := &probe{ctx: ctx, t: t, client: client}
	var out []Result
	for _, c := range Checks() {
		out = append(out, Result{Check: c, Err: c.run(p)})
	}
	return out
}

// Score counts the passed results.
func Score(rs []Result) (passed, total int) {
	for _, r := range rs {
		if r.Err == nil {
			passed++
		}
	}
	return passed, len(rs)
}

// Report formats results as a table, one line per check.
func Report(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		st := "pass"
		if r.Err != nil {
			st = "FAIL: " + r.Err.Error()
		}
		fmt.Fprintf(&b, "%-24s %-16s %s\n", r.ID, r.Section, st)
	}
	p, n := Score(rs)
	fmt.Fprintf(&b, "score %d/%d\n", p, n)
	return b.String()
}

// Checks returns the checks, each citing its section.
func Checks() []Check {
	return []Check{
		{"creation-attrs", "XEP-0124 §7.2", "the creation response carries sid, wait, requests, hold and ver", checkCreationAttrs},
		{"xbosh-version", "XEP-0206 §5", "the creation response carries xmpp:version and authid", checkXBOSH},
		{"wait-clamped", "XEP-0124 §7.2", "the wait answered is not more than the wait asked", checkWaitClamped},
		{"hold-clamped", "XEP-0124 §7.2", "the hold answered is not more than the hold asked", checkHoldClamped},
		{"wait-invalid", "XEP-0124 §7.1, §17.2", "a wait that is not a number is a bad-request", checkWaitInvalid},
		{"hold-invalid", "XEP-0124 §7.1, §17.2", "a negative hold is a bad-request", checkHoldInvalid},
		{"host-unknown", "XEP-0124 §17.2", "a session for an unknown domain is refused with host-unknown", checkHostUnknown},
		{"content-type", "XEP-0124 §7.1", "responses carry the Content-Type the 'content' attribute asked for", checkContent},
		{"unknown-sid", "XEP-0124 §17.1, §17.2", "an unknown sid gets item-not-found with HTTP 200", checkUnknownSID},
		{"payload-forwarded", "XEP-0124 §8", "a payload reaches the server and its answer comes back", checkPayload},
		{"wait-honoured", "XEP-0124 §8", "an empty request is held, and answered within 'wait'", checkWait},
		{"hold-honoured", "XEP-0124 §8", "with hold='1', a new request makes the held one answered", checkHoldOverflow},
		{"hold-zero", "XEP-0124 §12", "with hold='0' no request is kept waiting", checkHoldZero},
		{"rid-out-of-order", "XEP-0124 §14.2", "requests out of order within the window are answered in rid order", checkOutOfOrder},
		{"rid-beyond-window", "XEP-0124 §14.2", "a rid beyond the window ends the session with item-not-found", checkBeyondWindow},
		{"rid-repeated", "XEP-0124 §14.3", "a repeated rid gets the same response again", checkRepeat},
		{"rid-stale", "XEP-0124 §14.3", "a repeated rid whose response is gone gets item-not-found", checkStale},
		{"terminate", "XEP-0124 §13", "a terminate is answered type='terminate' with HTTP 200", checkTerminate},
		{"terminate-held", "XEP-0124 §13, §17.2", "a request held at the terminate is answered at once", checkTerminateHeld},
		{"after-terminate", "XEP-0124 §10, §17.2", "a request after the terminate gets a terminate with HTTP 200", checkAfterTerminate},
		{"pause", "XEP-0124 §10", "a pause answers the held requests at once, the pause without payloads", checkPause},
		{"ack", "XEP-0124 §9.1", "acks, when reported, name the highest rid received in order", checkAck},
		{"key-valid", "XEP-0124 §15.4", "a session with a key sequence works", checkKeyValid},
	}
}

func checkCreationAttrs(p *probe) error {
	s, err := p.open(opts{wait: "5", hold: "1"})
	if err != nil {
		return err
	}
	defer s.terminate()
	for _, k := range []string{"sid", "wait", "requests", "hold", "ver"} {
		if s.create.b.Get(k) == "" {
			return fail("no %s in %s", k, s.create)
		}
	}
	return nil
}

func checkXBOSH(p *probe) error {
	s, err := p.open(opts{wait: "5", hold: "1"})
	if err != nil {
		return err
	}
	defer s.terminate()
	if s.create.b.Get("xmpp:version") == "" || s.create.b.Get("authid") == "" {
		// authid may come in a later response; look there too.
		a := s.create
		for range 2 {
			if a.b.Get("xmpp:version") != "" && a.b.Get("authid") != "" {
				return nil
			}
			a = s.send("", "")
			if a.err != nil {
				return a.err
			}
		}
		return fail("no xmpp:version or authid: %s", s.create)
	}
	return nil
}

func checkWaitClamped(p *probe) error {
	s, err := p.open(opts{wait: "7", hold: "1"})
	if err != nil {
		return err
	}
	defer s.terminate()
	if w := s.create.b.IntAttr("wait", -1); w < 0 || w > 7 {
		return fail("asked wait='7', got wait='%s'", s.create.b.Get("wait"))
	}
	return nil
}

func checkHoldClamped(p *probe) error {
	s, err := p.open(opts{wait: "5", hold: "1"})
	if err != nil {
		return err
	}
	defer s.terminate()
	if h := s.create.b.IntAttr("hold", -1); h < 0 || h > 1 {
		return fail("asked hold='1', got hold='%s'", s.create.b.Get("hold"))
	}
	return nil
}

func checkWaitInvalid(p *probe) error {
	return refusedWith(p, opts{wait: "abc", hold: "1"})
}

func checkHoldInvalid(p *probe) error {
	return refusedWith(p, opts{wait: "5", hold: "-1"})
}

// refusedWith wants the creation request refused with bad-request.
func refusedWith(p *probe, o opts) error {
	a := p.post(fmt.Sprintf("<body rid='%d' to='%s' ver='1.6' wait='%s' hold='%s' xmpp:version='1.0' xmlns:xmpp='%s' %s/>",
		startRID(), p.t.Domain, o.wait, o.hold, boshwire.NSXBOSH, ns))
	if a.err != nil {
		return a.err
	}
	if !a.terminate("bad-request") {
		if sid := a.b.Get("sid"); sid != "" {
			_ = p.post(fmt.Sprintf("<body rid='%d' sid='%s' type='terminate' %s/>", startRID(), sid, ns))
		}
		return fail("wait='%s' hold='%s': want a terminate with bad-request, got %s", o.wait, o.hold, a)
	}
	return nil
}

func checkHostUnknown(p *probe) error {
	a := p.post(fmt.Sprintf("<body rid='%d' to='unknown.invalid' ver='1.6' wait='5' hold='1' %s/>", startRID(), ns))
	if a.err != nil {
		return a.err
	}
	if !a.terminate("host-unknown") {
		return fail("want a terminate with host-unknown, got %s", a)
	}
	return nil
}

func checkContent(p *probe) error {
	const ct = "text/xml; charset=utf-8; x-test=1"
	s, err := p.open(opts{wait: "5", hold: "1", extra: " content='" + ct + "'"})
	if err != nil {
		return err
	}
	defer s.terminate()
	if got := s.create.header.Get("Content-Type"); got != ct {
		return fail("Content-Type %q, want %q", got, ct)
	}
	return nil
}

func checkUnknownSID(p *probe) error {
	a := p.post(fmt.Sprintf("<body rid='%d' sid='no-such-session-4711' %s/>", startRID(), ns))
	if a.err != nil {
		return a.err
	}
	if !a.terminate("item-not-found") || a.status != http.StatusOK {
		return fail("want HTTP 200 and a terminate with item-not-found, got %s", a)
	}
	return nil
}

// loggedIn opens a session with wait='wait' and logs in.
func loggedIn(p *probe, wait string) (*session, error) {
	s, err := p.open(opts{wait: wait, hold: "1"})
	if err != nil {
		return nil, err
	}
	if err := s.login(); err != nil {
		s.terminate()
		return nil, err
	}
	return s, nil
}

func checkPayload(p *probe) error {
	s, err := loggedIn(p, "5")
	if err != nil {
		return err
	}
	defer s.terminate()
	a := s.send("", s.ping("p1"))
	if _, err := s.await(a, 3, named("iq", "p1")); err != nil {
		return fmt.Errorf("ping result: %w", err)
	}
	return nil
}

func checkWait(p *probe) error {
	s, err := loggedIn(p, "2")
	if err != nil {
		return err
	}
	defer s.terminate()
	a := s.send("", "")
	switch {
	case a.err != nil:
		return a.err
	case a.terminate(""):
		return fail("terminate: %s", a)
	case a.elapsed < 900*time.Millisecond:
		return fail("an empty request with nothing to send was answered after %v, not held", a.elapsed)
	case a.elapsed > 2*time.Second+1500*time.Millisecond:
		return fail("an empty request was held %v with wait='2'", a.elapsed)
	}
	return nil
}

func checkHoldOverflow(p *probe) error {
	s, err := loggedIn(p, "10")
	if err != nil {
		return err
	}
	defer s.terminate()
	b1, _ := s.body("", "")
	first := s.p.async(b1)
	time.Sleep(300 * time.Millisecond) // the first is held now
	// Not empty: two empty requests this fast would be overactivity (§11).
	b2, _ := s.body("", s.ping("h2"))
	second := s.p.async(b2)
	select {
	case a := <-first:
		if a.err != nil || a.terminate("") {
			return fail("the held request: %s", a)
		}
		if a.elapsed > 2*time.Second {
			return fail("the held request was answered %v after it was sent, not when the second came", a.elapsed)
		}
	case <-time.After(5 * time.Second):
		return fail("the held request was not answered when a second one came (hold='1')")
	}
	select {
	case a := <-second:
		if a.err != nil || a.terminate("") {
			return fail("the second request: %s", a)
		}
	case <-time.After(15 * time.Second):
		return fail("the second request was not answered")
	}
	return nil
}

func checkHoldZero(p *probe) error {
	s, err := p.open(opts{wait: "5", hold: "0"})
	if err != nil {
		return err
	}
	defer s.terminate()
	if h := s.create.b.IntAttr("hold", -1); h != 0 {
		return fail("asked hold='0', got hold='%s'", s.create.b.Get("hold"))
	}
	// Polling faster than 'polling' would be a policy-violation (§12).
	polling := time.Duration(min(s.create.b.IntAttr("polling", 1), 10)) * time.Second
	time.Sleep(polling + 100*time.Millisecond)
	a := s.send("", "")
	if a.err != nil || a.terminate("") {
		return fail("empty request: %s", a)
	}
	if a.elapsed > 1500*time.Millisecond {
		return fail("with hold='0' an empty request was kept %v", a.elapsed)
	}
	return nil
}

func checkOutOfOrder(p *probe) error {
	s, err := loggedIn(p, "5")
	if err != nil {
		return err
	}
	defer s.terminate()
	b1, _ := s.body("", s.ping("o1"))
	b2, _ := s.body("", s.ping("o2"))
	second := s.p.async(b2) // rid N+1 first
	time.Sleep(200 * time.Millisecond)
	first := s.p.async(b1)
	var got []string
	for i, ch := range []<-chan answer{first, second} {
		select {
		case a := <-ch:
			if a.err != nil || a.terminate("") {
				return fail("request %d of 2: %s", i+1, a)
			}
			for _, c := range a.b.Children {
				if c.Name.Local == "iq" {
					got = append(got, string(c.Raw))
				}
			}
		case <-time.After(8 * time.Second):
			return fail("request %d of 2 was not answered", i+1)
		}
	}
	// The results may also come on a later response; collect until both.
	all := strings.Join(got, "")
	for i := 0; i < 3 && !(strings.Contains(all, "'o2'") || strings.Contains(all, `"o2"`)); i++ {
		a := s.send("", "")
		if a.err != nil || a.terminate("") {
			return fail("after the out-of-order pair: %s", a)
		}
		for _, c := range a.b.Children {
			all += string(c.Raw)
		}
	}
	i1, i2 := idIndex(all, "o1"), idIndex(all, "o2")
	if i1 < 0 || i2 < 0 || i1 > i2 {
		return fail("ping results out of order or missing: %s", all)
	}
	return nil
}

// idIndex finds id='x' or id="x" in s.
func idIndex(s, id string) int {
	if i := strings.Index(s, "id='"+id+"'"); i >= 0 {
		return i
	}
	return strings.Index(s, `id="`+id+`"`)
}

func checkBeyondWindow(p *probe) error {
	s, err := p.open(opts{wait: "5", hold: "1"})
	if err != nil {
		return err
	}
	s.rid += 20
	a := s.send("", "")
	if !a.terminate("item-not-found") || a.status != http.StatusOK {
		s.terminate()
		return fail("want HTTP 200 and a terminate with item-not-found, got %s", a)
	}
	return nil
}

func checkRepeat(p *probe) error {
	s, err := loggedIn(p, "5")
	if err != nil {
		return err
	}
	defer s.terminate()
	b1, _ := s.body("", s.ping("r1"))
	a := s.p.post(b1)
	if a.err != nil || a.terminate("") {
		return fail("ping: %s", a)
	}
	again := s.p.post(b1)
	if again.err != nil || again.raw != a.raw {
		return fail("repeated rid: got %s, want the same answer %s", again, a)
	}
	return nil
}

func checkStale(p *probe) error {
	s, err := loggedIn(p, "5")
	if err != nil {
		return err
	}
	old, _ := s.body("", s.ping("s0"))
	if a := s.p.post(old); a.err != nil || a.terminate("") {
		s.terminate()
		return fail("ping: %s", a)
	}
	for i := range 6 {
		a := s.send("", s.ping(fmt.Sprintf("s%d", i+1)))
		if a.err != nil || a.terminate("") {
			s.terminate()
			return fail("ping %d: %s", i+1, a)
		}
	}
	a := s.p.post(old)
	if !a.terminate("item-not-found") {
		s.terminate()
		return fail("a rid answered 6 requests ago: want a terminate with item-not-found, got %s", a)
	}
	return nil
}

func checkTerminate(p *probe) error {
	s, err := loggedIn(p, "5")
	if err != nil {
		return err
	}
	a := s.send(" type='terminate'", "<presence xmlns='jabber:client' type='unavailable'/>")
	if !a.terminate("") || a.status != http.StatusOK {
		return fail("want HTTP 200 and type='terminate', got %s", a)
	}
	return nil
}

func checkTerminateHeld(p *probe) error {
	s, err := loggedIn(p, "10")
	if err != nil {
		return err
	}
	b1, _ := s.body("", "")
	held := s.p.async(b1)
	time.Sleep(300 * time.Millisecond)
	a := s.send(" type='terminate'", "")
	if !a.terminate("") {
		return fail("terminate: %s", a)
	}
	select {
	case h := <-held:
		if h.err != nil || h.status != http.StatusOK {
			return fail("the held request: %s", h)
		}
		if h.elapsed > 3*time.Second {
			return fail("the held request was answered %v after it was sent, not at the terminate", h.elapsed)
		}
	case <-time.After(5 * time.Second):
		return fail("the held request was not answered at the terminate")
	}
	return nil
}

func checkAfterTerminate(p *probe) error {
	s, err := loggedIn(p, "5")
	if err != nil {
		return err
	}
	if a := s.send(" type='terminate'", ""); !a.terminate("") {
		return fail("terminate: %s", a)
	}
	time.Sleep(100 * time.Millisecond)
	a := s.send("", "")
	if !a.terminate("") || a.status != http.StatusOK {
		return fail("a request after the terminate: want HTTP 200 and a terminate, got %s", a)
	}
	return nil
}

func checkPause(p *probe) error {
	s, err := loggedIn(p, "10")
	if err != nil {
		return err
	}
	defer s.terminate()
	if s.create.b.Get("maxpause") == "" {
		return nil // pausing not offered: nothing to check
	}
	b1, _ := s.body("", "")
	held := s.p.async(b1)
	time.Sleep(300 * time.Millisecond)
	a := s.send(" pause='5'", "")
	if a.err != nil || a.terminate("") {
		return fail("pause: %s", a)
	}
	if len(a.b.Children) != 0 {
		return fail("the answer to a pause carries payloads: %s", a)
	}
	select {
	case h := <-held:
		if h.err != nil || h.elapsed > 3*time.Second {
			return fail("the held request at the pause: %s", h)
		}
	case <-time.After(5 * time.Second):
		return fail("the held request was not answered at the pause")
	}
	return nil
}

func checkAck(p *probe) error {
	s, err := p.open(opts{wait: "5", hold: "1", extra: " ack='1'"})
	if err != nil {
		return err
	}
	defer s.terminate()
	ack := s.create.b.Get("ack")
	if ack == "" {
		return nil // acknowledgements not reported: nothing to check
	}
	if want := fmt.Sprint(s.rid - 1); ack != want {
		return fail("creation response ack='%s', want the creation rid %s", ack, want)
	}
	return nil
}

func checkKeyValid(p *probe) error {
	s, err := p.open(opts{wait: "5", hold: "1", keys: 20})
	if err != nil {
		return err
	}
	defer s.terminate()
	if err := s.login(); err != nil {
		return fmt.Errorf("with keys: %w", err)
	}
	return nil
}
