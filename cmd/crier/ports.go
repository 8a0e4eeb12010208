package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
)

// keyAddr is a config key and the listen address it holds.
type keyAddr struct{ key, addr string }

// inUse turns a listener error for an address another program holds into
// one that names the config key to change. Other errors pass unchanged.
// The failing address is found by its port among keys (the one key when
// the error does not say).
func inUse(err error, file string, keys ...keyAddr) error {
	if err == nil || !addrInUse(err) {
		return err
	}
	var set []keyAddr
	for _, k := range keys {
		if k.addr != "" {
			set = append(set, k)
		}
	}
	var hit *keyAddr
	if port := failedPort(err); port != "" {
		for i := range set {
			if _, p, perr := net.SplitHostPort(set[i].addr); perr == nil && p == port {
				hit = &set[i]
				break
			}
		}
	}
	if hit == nil && len(set) == 1 {
		hit = &set[0]
	}
	if hit == nil {
		return fmt.Errorf("%w\n(a port is in use, by another program or another crier: stop it or change %s in %s)", err, keyNames(set), file)
	}
	return fmt.Errorf("crier: %s %s is in use, by another program or another crier: stop it or change %s in %s (%w)", hit.key, hit.addr, hit.key, file, err)
}

func keyNames(set []keyAddr) string {
	names := make([]string, len(set))
	for i, k := range set {
		names[i] = k.key
	}
	return strings.Join(names, " or ")
}

// addrInUse reports whether err says a listen address is taken. The NATS
// server reports it as text only.
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// failedPort returns the port of the address a listen error is about, or "".
func failedPort(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Addr != nil {
		if _, p, perr := net.SplitHostPort(oe.Addr.String()); perr == nil {
			return p
		}
	}
	return ""
}
