package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/plugins"
)

func command(t *testing.T, p *Plugin, name string) plugins.Command {
	t.Helper()
	for _, c := range p.Commands() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no command %q", name)
	return plugins.Command{}
}

// TestAlertsCommand checks that the alerts command lists what fires and
// forgets what resolved.
func TestAlertsCommand(t *testing.T) {
	e := start(t, "[[webhooks]]\npath = \"/am\"\nto = [\"ops@example.org\"]\nrate = \"0\"\n", nil)
	run := func() plugins.Reply {
		r, err := command(t, e.p, "alerts").Run(context.Background(), &plugins.Call{Command: "alerts", Time: time.Date(2026, 1, 2, 4, 4, 5, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run(); r.Text != "no firing alerts" {
		t.Errorf("empty: %q", r.Text)
	}
	e.post("/am", amBody("g", "firing:DiskFull:critical:db1", "firing:Load:warning:web1"))
	r := run()
	if r.Text != "2 firing alerts" || r.Table == nil || len(r.Table.Rows) != 2 {
		t.Fatalf("reply %+v", r)
	}
	if got := strings.Join(r.Table.Rows[0], "|"); got != "DiskFull|critical|db1|1h ago|DiskFull on db1" {
		t.Errorf("row %q", got)
	}
	e.post("/am", amBody("g", "resolved:DiskFull:critical:db1", "firing:Load:warning:web1"))
	if r := run(); r.Text != "1 firing alert" || r.Table.Rows[0][0] != "Load" {
		t.Errorf("after resolve: %+v", r)
	}
	if len(e.p.Commands()) != 1 {
		t.Errorf("silence commands without alertmanager_url")
	}
}

// fakeAM is Alertmanager's silences API.
type fakeAM struct {
	mu       sync.Mutex
	silences []map[string]any
	fail     bool
}

func (f *fakeAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		http.Error(w, `"silence invalid: matchers must not be empty"`, http.StatusBadRequest)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v2/silences":
		var s map[string]any
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s["id"] = fmt.Sprintf("sil-%d", len(f.silences)+1)
		s["status"] = map[string]any{"state": "active"}
		f.silences = append(f.silences, s)
		_ = json.NewEncoder(w).Encode(map[string]string{"silenceID": s["id"].(string)})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v2/silences":
		expired := map[string]any{"id": "old", "matchers": []any{}, "status": map[string]any{"state": "expired"},
			"startsAt": "2020-01-01T00:00:00Z", "endsAt": "2020-01-01T01:00:00Z"}
		_ = json.NewEncoder(w).Encode(append([]map[string]any{expired}, f.silences...))
	default:
		http.NotFound(w, r)
	}
}

// TestSilenceCommands checks silence and silences against a fake
// Alertmanager API.
func TestSilenceCommands(t *testing.T) {
	am := &fakeAM{}
	srv := httptest.NewServer(am)
	defer srv.Close()
	e := start(t, fmt.Sprintf("[[webhooks]]\npath = \"/am\"\nto = [\"ops@example.org\"]\nalertmanager_url = %q\n", srv.URL), nil)
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	call := &plugins.Call{Command: "silence", RealJID: "alice@example.org", Time: now,
		Args: map[string]string{"matchers": `{alertname="Disk Full",instance=~"db.*"}`, "duration": "2h", "comment": "swap disk"}}
	r, err := command(t, e.p, "silence").Run(context.Background(), call)
	if err != nil || !strings.Contains(r.Text, "id sil-1") || !strings.Contains(r.Text, "2026-01-02 05:00 UTC") {
		t.Fatalf("silence = %+v, %v", r, err)
	}
	am.mu.Lock()
	s := am.silences[0]
	am.mu.Unlock()
	ms, _ := json.Marshal(s["matchers"])
	if string(ms) != `[{"isEqual":true,"isRegex":false,"name":"alertname","value":"Disk Full"},{"isEqual":true,"isRegex":true,"name":"instance","value":"db.*"}]` {
		t.Errorf("matchers %s", ms)
	}
	if s["createdBy"] != "alice@example.org" || s["comment"] != "swap disk" || s["startsAt"] != "2026-01-02T03:00:00Z" || s["endsAt"] != "2026-01-02T05:00:00Z" {
		t.Errorf("silence %v", s)
	}
	r, err = command(t, e.p, "silences").Run(context.Background(), &plugins.Call{Command: "silences"})
	if err != nil || r.Text != "1 silence" || r.Table.Rows[0][0] != "sil-1" || !strings.Contains(r.Table.Rows[0][1], `instance=~"db.*"`) {
		t.Fatalf("silences = %+v, %v", r, err)
	}
	for _, bad := range []map[string]string{
		{"matchers": "alertname", "duration": "1h"},
		{"matchers": "9x=1", "duration": "1h"},
		{"matchers": "a=~(", "duration": "1h"},
		{"matchers": "a=b", "duration": "-1h"},
		{"matchers": "a=b", "duration": "90d"},
	} {
		r, err := command(t, e.p, "silence").Run(context.Background(), &plugins.Call{Args: bad})
		if err != nil || r.NoteType != plugins.NoteError {
			t.Errorf("%v: %+v, %v; want an error note", bad, r, err)
		}
	}
	am.mu.Lock()
	am.fail = true
	am.mu.Unlock()
	_, err = command(t, e.p, "silence").Run(context.Background(), &plugins.Call{Args: map[string]string{"matchers": "a=b", "duration": "1h"}})
	if !errors.Is(err, ErrAlertmanager) || !strings.Contains(err.Error(), "matchers must not be empty") {
		t.Errorf("refused silence: %v", err)
	}
}

// TestOwnListener checks a webhook on a listener of its own, and that a
// second instance (a reload) takes the address over from the first.
func TestOwnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tables := fmt.Sprintf("[[webhooks]]\npath = \"/own\"\nlisten = %q\nformat = \"text\"\nto = [\"ops@example.org\"]\nrate = \"0\"\n", addr)
	e1 := start(t, tables, nil)
	if _, ok := e1.p.Routes()["/own"]; ok {
		t.Error("a path with a listener of its own is also on the [http] listener")
	}
	post := func() int {
		resp, err := http.Post("http://"+addr+"/own", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(); c != 200 || len(e1.host.messages()) != 1 {
		t.Fatalf("POST = %d, %d messages", c, len(e1.host.messages()))
	}
	e2 := start(t, tables, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e1.p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c := post(); c != 200 || len(e2.host.messages()) != 1 {
		t.Fatalf("after the takeover: POST = %d, %d messages on the new instance", c, len(e2.host.messages()))
	}
	if err := e2.p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Post("http://"+addr+"/own", "text/plain", strings.NewReader("x")); err == nil {
		t.Error("the listener is still open after the last instance stopped")
	}
}

// TestParseMatchers checks the matcher syntax.
func TestParseMatchers(t *testing.T) {
	for in, want := range map[string]string{
		`a=b`:                     `{a="b"}`,
		`{a="b,c", d!=e}`:         `{a="b,c",d!="e"}`,
		`job=~"api|web",x!~y.*`:   `{job=~"api|web",x!~"y.*"}`,
		`severity="crit\"ical\""`: `{severity="crit\"ical\""}`,
	} {
		ms, err := ParseMatchers(in)
		if err != nil || FormatMatchers(ms) != want {
			t.Errorf("ParseMatchers(%q) = %s, %v; want %s", in, FormatMatchers(ms), err, want)
		}
	}
	for _, bad := range []string{"", "{}", "a", "=b", "a~b", `a="b`} {
		if _, err := ParseMatchers(bad); !errors.Is(err, ErrBadMatchers) {
			t.Errorf("ParseMatchers(%q) = %v, want ErrBadMatchers", bad, err)
		}
	}
}
