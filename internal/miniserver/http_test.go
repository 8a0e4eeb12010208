package miniserver

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
)

func TestHTTPMux(t *testing.T) {
	web := fstest.MapFS{"index.html": {Data: []byte("<html>chat</html>")}}
	s := startServer(t, func(c *Config) { c.HTTPAddr = "127.0.0.1:0"; c.Web = web })
	if got, want := s.BOSHURL(), "http://"+s.HTTPAddr()+"/http-bind"; got != want {
		t.Fatalf("BOSHURL = %q, want %q", got, want)
	}
	resp, err := http.Get("http://" + s.HTTPAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "chat") {
		t.Fatalf("GET / = %d %q", resp.StatusCode, body)
	}
	resp, err = http.Post(s.BOSHURL(), "text/xml", strings.NewReader("<body/>"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Fatal("/http-bind is not mounted")
	}
}
