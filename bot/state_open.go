package bot

import (
	"log/slog"

	"crier/internal/state"
)

// openStateFile opens the bbolt store at path.
func openStateFile(path string, log *slog.Logger) (state.Store, error) {
	return state.Open(path, state.Options{Logger: log.With("component", "state")})
}
