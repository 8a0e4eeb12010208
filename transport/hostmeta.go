package transport

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Link relations of XEP-0156 (Discovering Alternative XMPP Connection
// Methods) for the two HTTP-borne transports.
const (
	relWebSocket = "urn:xmpp:alt-connections:websocket"
	relBOSH      = "urn:xmpp:alt-connections:xbosh"
)

// maxHostMeta bounds a host-meta document read for discovery.
const maxHostMeta = 64 << 10

// hostMetaBase is where the host-meta documents of a domain live: always
// https (XEP-0156 §3.3: the documents decide where the password goes, so
// they must come from the domain itself). Tests point it at a local server.
var hostMetaBase = func(domain string) string { return "https://" + domain }

// discoverEndpoint looks up the WebSocket or BOSH endpoint of the JID's
// domain in its host-meta documents (XEP-0156): host-meta.json first
// (RFC 6415 JRD), then host-meta (XRD). The certificate of the domain is
// verified as for the connection itself. A wss:// or https:// link is
// preferred; a plain one is taken only if there is no other (the dial then
// accepts it only towards loopback).
func discoverEndpoint(ctx context.Context, o Options, rel string) (string, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	tr.TLSClientConfig = o.TLSConfig.Clone()
	tr.TLSClientConfig.ServerName = "" // the domain's own name, from the URL
	if o.Resolver != nil {
		d := &net.Dialer{Resolver: o.Resolver, Timeout: 30 * time.Second}
		tr.DialContext = d.DialContext
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// A redirect could send the lookup anywhere: only https ones.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" || len(via) >= 3 {
				return fmt.Errorf("redirect to %s refused", req.URL)
			}
			return nil
		},
	}
	base := hostMetaBase(o.JID.Domainpart())
	var tried []string
	for _, doc := range []string{"/.well-known/host-meta.json", "/.well-known/host-meta"} {
		u := base + doc
		links, err := fetchHostMeta(ctx, client, u)
		if err != nil {
			if tlsCause(err) != nil {
				return "", fmt.Errorf("%w: XEP-0156 discovery at %s: %w", ErrTLS, u, err)
			}
			if ctx.Err() != nil {
				return "", fmt.Errorf("%w: XEP-0156 discovery at %s: %w", ErrTimeout, u, err)
			}
			tried = append(tried, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		if href := pickLink(links, rel); href != "" {
			return href, nil
		}
		tried = append(tried, fmt.Sprintf("%s: no %s link", u, rel))
	}
	return "", fmt.Errorf("%w: no %s endpoint found for %s by XEP-0156 (set the URL in the config): %v",
		ErrResolve, transportOfRel(rel), o.JID.Domainpart(), tried)
}

type hostLink struct{ rel, href string }

// fetchHostMeta reads the links of one host-meta document, JSON or XML by
// its path.
func fetchHostMeta(ctx context.Context, client *http.Client, u string) ([]hostLink, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHostMeta+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxHostMeta {
		return nil, fmt.Errorf("document larger than %d bytes", maxHostMeta)
	}
	var links []hostLink
	if len(u) > 5 && u[len(u)-5:] == ".json" {
		var jrd struct {
			Links []struct {
				Rel  string `json:"rel"`
				Href string `json:"href"`
			} `json:"links"`
		}
		if err := json.Unmarshal(body, &jrd); err != nil {
			return nil, fmt.Errorf("not a JSON host-meta document: %w", err)
		}
		for _, l := range jrd.Links {
			links = append(links, hostLink{l.Rel, l.Href})
		}
		return links, nil
	}
	var xrd struct {
		XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
		Links   []struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"Link"`
	}
	if err := xml.Unmarshal(body, &xrd); err != nil {
		return nil, fmt.Errorf("not an XRD host-meta document: %w", err)
	}
	for _, l := range xrd.Links {
		links = append(links, hostLink{l.Rel, l.Href})
	}
	return links, nil
}

// pickLink returns the first secure href of rel, else the first one.
func pickLink(links []hostLink, rel string) string {
	var plain string
	for _, l := range links {
		if l.rel != rel || l.href == "" {
			continue
		}
		u, err := url.Parse(l.href)
		if err != nil || u.Host == "" {
			continue
		}
		switch u.Scheme {
		case "wss", "https":
			return l.href
		case "ws", "http":
			if plain == "" {
				plain = l.href
			}
		}
	}
	return plain
}

func transportOfRel(rel string) string {
	if rel == relBOSH {
		return "BOSH"
	}
	return "WebSocket"
}
