package bot

// Reload: a new configuration applied to the running bot.

import (
	"context"
	"fmt"
	"time"

	"crier/internal/config"
)

// Reload applies cfg to the running bot: rooms joined or left by the
// difference, rules and cron jobs swapped atomically. A change that needs a
// restart, or a config whose rules do not compile, is refused and the old
// configuration keeps running.
func (b *Bot) Reload(cfg *config.Config) error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	old := b.cfg.Load().cfg
	if err := config.Diff(old, cfg); err != nil {
		b.reloadFailed(err)
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	eng, jobs, err := b.compile(cfg)
	if err != nil {
		b.reloadFailed(err)
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	swapped, err := b.plugins.reload(ctx, cfg)
	if err != nil {
		b.reloadFailed(err)
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	eng.Adopt(b.engine.Load())
	b.engine.Store(eng)
	b.cronMu.Lock()
	b.cron.Stop()
	b.cron = b.newScheduler(cfg, jobs)
	b.cron.Start()
	b.cronMu.Unlock()
	b.cfg.Store(newSettings(cfg))
	b.rooms.Set(b.wantedRooms(cfg))
	b.met.reloads.WithLabelValues("ok").Inc()
	b.met.reloadFailed.Set(0)
	b.log.Info("configuration reloaded", "rules", eng.Len(), "rooms", len(cfg.Rooms), "cron", len(jobs), "plugins_restarted", swapped)
	return nil
}

func (b *Bot) reloadFailed(err error) {
	b.met.reloads.WithLabelValues("refused").Inc()
	b.met.reloadFailed.Set(1)
	b.log.Error("reload refused; the old configuration keeps running", "err", err)
}

// ReloadFile loads the config at path and reloads it.
func (b *Bot) ReloadFile(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		b.reloadFailed(err)
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	return b.Reload(cfg)
}
