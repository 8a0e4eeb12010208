package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// shared is a webhook listener of its own (webhooks.listen). It outlives
// plugin instances: a reload starts the new instance before it stops the
// old one, so the new one takes the address over (its handler serves from
// then on) instead of failing to bind it.
type shared struct {
	addr  string
	srv   *http.Server
	mu    sync.Mutex
	owner *Plugin
	h     http.Handler
}

var (
	sharedMu sync.Mutex
	servers  = map[string]*shared{}
)

// acquire makes p the owner of the listener at addr, opening it when no
// instance holds it.
func acquire(addr string, p *Plugin, h http.Handler, log *slog.Logger) (*shared, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	s := servers[addr]
	if s == nil {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("webhooks: listen %s: %w", addr, err)
		}
		s = &shared{addr: addr}
		s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		servers[addr] = s
		go func() {
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("webhook listener stopped", "listen", addr, "err", err)
			}
		}()
		log.Info("webhook listener open", "listen", ln.Addr().String())
	}
	s.mu.Lock()
	s.owner, s.h = p, h
	s.mu.Unlock()
	return s, nil
}

// ServeHTTP hands the request to the current owner's paths.
func (s *shared) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	if h == nil {
		http.Error(w, "webhooks: stopping", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// release closes the listener when p still owns it (no newer instance took
// it over).
func (s *shared) release(p *Plugin) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	s.mu.Lock()
	mine := s.owner == p
	s.mu.Unlock()
	if !mine {
		return
	}
	delete(servers, s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
