package bosh_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"crier/internal/miniserver/boshcm"
)

func TestDebugCreate(t *testing.T) {
	h := newHub(t)
	srv, _ := startCM(t, h, boshcm.Config{MaxWait: 2}, nil)
	resp, err := http.Post(srv.URL, "text/xml", strings.NewReader(`<body rid='100' to='example.test' wait='2' hold='1' xmlns='http://jabber.org/protocol/httpbind' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	t.Logf("%d %s", resp.StatusCode, b)
}
