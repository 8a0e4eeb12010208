package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"crier/bot"
	"crier/internal/memtrim"
)

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErr("crier: -log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErr("crier: -log-format %q: want text or json", format)
}

// singleProc runs Go code on one processor (GOMAXPROCS=1) unless the
// environment sets GOMAXPROCS. The daemon waits on the network almost all
// the time; with more processors each hand-off between its stages (the
// reader, the chain, the outbox's writer) wakes another thread, which at
// one message in flight costs about a fifth of its CPU per reply
// (docs/BENCHMARKS.md). GOMAXPROCS=N gives a CPU-heavy setup (a moderator
// with large lists in busy rooms) N processors again.
func singleProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// cmdRun is the daemon. Signals become a context (SIGINT, SIGTERM) and a
// reload channel (SIGHUP); teardown runs in reverse order of start-up.
func cmdRun(args []string, stdout, stderr io.Writer) error {
	singleProc()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return runDaemon(ctx, args, stdout, stderr, hup)
}

// runDaemon runs the daemon until ctx ends; each value on hup reloads the
// config file. The listeners are bound in an order that fails early and
// touches nothing on the way: the operations port first, then the
// embedded servers, then the bot connects.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer, hup <-chan os.Signal) error {
	fs := newFlags("run", "[-c FILE] [-log-format text|json] [-log-level debug|info|warn|error]",
		"Runs the daemon until SIGINT or SIGTERM (a graceful shutdown, exit 0); SIGHUP reloads the\nconfig file, as POST /-/reload does.", stderr)
	path := configFlag(fs)
	format := fs.String("log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file until the daemon stops")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("crier run: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	log, err := newLogger(stderr, *format, *level)
	if err != nil {
		return err
	}
	cfg, _, err := loadAll(*path, true)
	if err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("crier: -cpuprofile: %w", err)}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("crier: -cpuprofile: %w", err)}
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	log.Info("crier starting", "version", buildVersion(), "config", *path, "jid", cfg.XMPP.JID, "transport", cfg.XMPP.Transport)

	var opsLn net.Listener
	if cfg.HTTP.Listen != "" {
		if opsLn, err = bot.ListenOps(cfg.HTTP.Listen); err != nil {
			return &exitError{code: 1, err: inUse(err, cfg.Path, keyAddr{"http.listen", cfg.HTTP.Listen})}
		}
		defer opsLn.Close() // when the start fails before it is served
	}
	roots, stopEmbedded, err := startEmbedded(cfg, log)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer stopEmbedded()

	b, err := bot.New(cfg, bot.Options{Logger: log, Version: buildVersion(), RootCAs: roots})
	if err != nil {
		code := 2 // the config's fault
		if bot.Unavailable(err) {
			code = 1 // NATS unreachable, the state file held by another process
		}
		return &exitError{code: code, err: err}
	}
	reload := func() error { return b.ReloadFile(*path) }
	if opsLn != nil {
		bot.ServeOpsOn(ctx, opsLn, b.OpsHandler(reload))
		log.Info("operations endpoint up", "addr", opsLn.Addr().String(), "paths", "/metrics /-/healthy /-/ready /-/reload")
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading configuration", "config", *path)
				_ = reload() // logged by the bot
			}
		}
	}()
	go releaseStartupMemory(ctx, b, log)
	if err := b.Run(ctx); err != nil {
		return &exitError{code: 1, err: err}
	}
	log.Info("crier stopped")
	return nil
}

// releaseStartupMemory returns the garbage of start-up to the system once
// the bot is first ready (bound, in its rooms), or after a minute at most.
// Start-up allocates several megabytes that are dead right after (parsing
// the system's CA certificates alone is about 3.7 MB); the runtime would
// otherwise keep that heap resident for minutes before its scavenger gives
// it back, although a bot at rest needs less than one. The pages of the
// binary that start-up read in are given back too (internal/memtrim): most
// of an idle crier's resident set is its own executable.
func releaseStartupMemory(ctx context.Context, b *bot.Bot, log *slog.Logger) {
	whenReady(ctx, func() bool { ok, _ := b.Ready(); return ok }, func() {
		debug.FreeOSMemory()
		st, err := memtrim.Release()
		if err != nil {
			log.Debug("the executable's resident pages were not given back", "err", err)
			return
		}
		log.Debug("start-up memory given back", "rss_before", st.RSSBefore, "rss_after", st.RSSAfter,
			"file_before", st.FileBefore, "file_after", st.FileAfter)
	}, 50*time.Millisecond, time.Minute)
}

// whenReady polls ready every tick and calls do once, when ready first
// says yes or after limit; never when ctx ends first.
func whenReady(ctx context.Context, ready func() bool, do func(), tick, limit time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ready() || time.Now().After(deadline) {
			do()
			return
		}
	}
}
