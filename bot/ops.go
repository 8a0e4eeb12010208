package bot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"crier/plugins"
)

// ReloadHeader is the header a POST /-/reload must carry, with any value.
// A web page cannot send it to another site without the browser asking
// that site first (a CORS preflight, which the endpoint never grants), so
// a page open in a browser on the bot's machine cannot make it reload.
const ReloadHeader = "X-Crier-Reload"

// OpsHandler serves the operations endpoints:
//
//	GET  /-/healthy  200 while the process runs
//	GET  /-/ready    200 once the session is bound and every room joined, else 503; the body says why
//	GET  /-/leader   200 while this instance may speak (always without [ha]), else 503: for a load
//	                 balancer that must reach the leader (webhooks to rooms)
//	GET  /metrics    Prometheus metrics
//	POST /-/reload   reload the config file (as SIGHUP does); 200, or 400 with every error;
//	                 403 without the X-Crier-Reload header or with an Origin header (a browser)
func (b *Bot) OpsHandler(reload func() error) http.Handler {
	b.met.primeRules(b.ruleNames())
	gather := prometheus.Gatherers{b.met.gather, opsRegistry(b.version, b.out)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		ok, lines := b.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	})
	mux.HandleFunc("GET /-/leader", func(w http.ResponseWriter, r *http.Request) {
		if !b.leader() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "standing by")
			return
		}
		fmt.Fprintln(w, "leading")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, r *http.Request) {
		if why := fromBrowser(r); why != "" {
			b.log.Warn("POST /-/reload refused", "why", why, "remote", r.RemoteAddr)
			http.Error(w, why, http.StatusForbidden)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "reloaded")
	})
	mux.Handle("/", http.HandlerFunc(b.pluginHTTP))
	return mux
}

// pluginHTTP serves the paths of the plugins that serve HTTP
// (plugins.HTTPServer): webhook receivers and the like.
func (b *Bot) pluginHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/-/") && p != "/metrics" {
		for _, rp := range b.plugins.active() {
			hs, ok := rp.p.(plugins.HTTPServer)
			if !ok {
				continue
			}
			if h, ok := hs.Routes()[p]; ok {
				h.ServeHTTP(w, r)
				return
			}
		}
	}
	http.NotFound(w, r)
}

// fromBrowser says why a reload request may come from a web page, or ""
// for one a script sent. Browsers put an Origin header on every POST
// (same-origin ones too, which covers a page that rebinds its own host
// name to 127.0.0.1); scripts and curl send none. The custom header
// stops what the Origin check would miss in an old browser: a cross-site
// form or a "simple" fetch cannot carry it.
func fromBrowser(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return fmt.Sprintf("a reload from a web page (Origin %s) is refused", o)
	}
	if r.Header.Get(ReloadHeader) == "" {
		return "POST /-/reload needs the header " + ReloadHeader + ": 1 (curl -X POST -H '" + ReloadHeader + ": 1' …)"
	}
	return ""
}

// ruleNames returns the names of the configured rules and cron jobs, the
// label values of crier_rule_hits_total.
func (b *Bot) ruleNames() []string {
	s := b.cfg.Load()
	if s == nil || s.cfg == nil {
		return nil
	}
	var names []string
	for _, r := range s.cfg.Rules {
		names = append(names, r.Name)
	}
	for _, c := range s.cfg.Cron {
		names = append(names, c.Name)
	}
	return names
}

// ListenOps binds the operations listener, so that a caller can hold the
// port before starting anything else and serve it later (ServeOpsOn).
func ListenOps(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bot: http listener: %w", err)
	}
	return ln, nil
}

// ServeOps listens on addr and serves h until ctx ends. It returns once the
// listener is up (or failed), so a caller knows the port is bound.
func ServeOps(ctx context.Context, addr string, h http.Handler) (net.Addr, <-chan error, error) {
	ln, err := ListenOps(addr)
	if err != nil {
		return nil, nil, err
	}
	return ln.Addr(), ServeOpsOn(ctx, ln, h), nil
}

// ServeOpsOn serves h on ln until ctx ends; the channel gets the server's
// end (nil after a shutdown).
func ServeOpsOn(ctx context.Context, ln net.Listener, h http.Handler) <-chan error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return done
}
