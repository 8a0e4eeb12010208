package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/bot"
	"crier/internal/state"
	"crier/plugins/natsrelay"
)

const stateSynopsis = "migrate [-c FILE] --from file|kv --to file|kv [--file PATH] [--bucket NAME] [--dry-run] [--overwrite]"

// Backends of `crier state migrate`.
const (
	backendFile = "file" // the bbolt file in [bot] state_dir
	backendKV   = "kv"   // the NATS KV bucket of [ha] (bucket + "-state")
)

// cmdState runs `crier state migrate`: it copies the state store from one
// backend to the other, so that a single instance can move to [ha] (or
// back) with its rooms joined by command, grants, cron's last runs and the
// plugins' state.
func cmdState(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "migrate" && args[0] != "-h" && args[0] != "--help") {
		return usageErr("usage: crier state %s", stateSynopsis)
	}
	if args[0] == "migrate" {
		args = args[1:]
	}
	fs := newFlags("state", stateSynopsis,
		"Copies every namespace of the state store (keys, values, expiry times, schema versions)\n"+
			"from one backend to the other: \"file\" is the bbolt file in [bot] state_dir (crier.db),\n"+
			"\"kv\" the NATS KV bucket instances of an [ha] bucket share (BUCKET-state on the [nats]\n"+
			"servers). Stop crier first: the file is locked while it runs. Nothing is deleted from\n"+
			"the source. A destination namespace that holds keys stops the copy before anything is\n"+
			"written, unless --overwrite. Exit 0 copied (or, with --dry-run, would copy), 1 the copy\n"+
			"failed or was refused, 2 bad usage or bad config.", stderr)
	path := fs.String("c", "config.toml", "config file")
	from := fs.String("from", "", `backend to read: "file" or "kv"`)
	to := fs.String("to", "", `backend to write: "file" or "kv"`)
	file := fs.String("file", "", "the bbolt file (default: [bot] state_dir/"+bot.StoreFile+")")
	bucket := fs.String("bucket", "", "the KV bucket (default: [ha] bucket + \"-state\")")
	dry := fs.Bool("dry-run", false, "read the source and check the destination; write nothing")
	overwrite := fs.Bool("overwrite", false, "write into destination namespaces that hold keys already")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("crier state migrate: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, b := range []struct{ flag, v string }{{"--from", *from}, {"--to", *to}} {
		if b.v != backendFile && b.v != backendKV {
			return usageErr("crier state migrate: %s must be %q or %q, not %q", b.flag, backendFile, backendKV, b.v)
		}
	}
	if *from == *to {
		return usageErr("crier state migrate: --from and --to are both %q", *from)
	}
	cfg, _, err := loadAll(*path, false)
	if err != nil {
		return err
	}
	if *file == "" {
		if cfg.Bot.StateDir == "" {
			return usageErr("crier state migrate: no [bot] state_dir in %s: give --file", cfg.Path)
		}
		*file = filepath.Join(cfg.Bot.StateDir, bot.StoreFile)
	}
	if *bucket == "" {
		if !cfg.HA.Enabled() {
			return usageErr("crier state migrate: no [ha] bucket in %s: give --bucket", cfg.Path)
		}
		*bucket = cfg.HA.Bucket + "-state"
	}
	nc := natsrelay.ConfigOf(cfg.Plugins)
	if nc.URL == "" {
		return usageErr("crier state migrate: no [nats] url in %s: the KV bucket lives on those servers", cfg.Path)
	}

	fail := func(err error) error { return &exitError{code: 1, err: fmt.Errorf("crier state migrate: %w", err)} }
	// Neither a missing source nor a dry run creates anything: a missing
	// source is an error, a missing destination is read as empty.
	var fileStore, kvStore state.Store
	if _, err := os.Stat(*file); err != nil {
		if *from == backendFile {
			return fail(fmt.Errorf("no state file to read: %w", err))
		}
		if *dry {
			fileStore = state.NewMemory()
		}
	}
	if fileStore == nil {
		st, err := state.Open(*file, state.Options{})
		if err != nil {
			if errors.Is(err, state.ErrLocked) {
				return fail(fmt.Errorf("%w (stop crier first)", err))
			}
			return fail(err)
		}
		fileStore = st
	}
	defer fileStore.Close()
	conn, err := natsrelay.Connect(*nc)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.KeyValue(ctx, *bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		if *from == backendKV {
			return fail(fmt.Errorf("no KV bucket %q to read on %s", *bucket, nc.URL))
		}
		if *dry {
			kvStore = state.NewMemory()
		}
	} else if err != nil {
		return fail(fmt.Errorf("KV bucket %q: %w", *bucket, err))
	}
	if kvStore == nil {
		st, err := state.OpenKV(js, *bucket, state.KVOptions{Replicas: cfg.HA.Replicas})
		if err != nil {
			return fail(err)
		}
		kvStore = st
	}
	defer kvStore.Close()

	src, dst, srcName, dstName := fileStore, kvStore, *file, "bucket "+*bucket
	if *from == backendKV {
		src, dst, srcName, dstName = kvStore, fileStore, dstName, srcName
	}
	copies, err := state.Copy(dst, src, state.CopyOptions{DryRun: *dry, Overwrite: *overwrite})
	if errors.Is(err, state.ErrNotEmpty) {
		return fail(fmt.Errorf("%w: nothing written (--overwrite writes over it)", err))
	}
	if err != nil {
		return fail(err)
	}
	keys := 0
	for _, c := range copies {
		keys += c.Keys
		fmt.Fprintf(stdout, "%s: %d keys (%d expiring), schema %d", c.Name, c.Keys, c.Expiring, c.Schema)
		if c.Existing > 0 {
			fmt.Fprintf(stdout, ", over %d keys already there", c.Existing)
		}
		fmt.Fprintln(stdout)
	}
	verb := "copied"
	if *dry {
		verb = "dry run: would copy"
	}
	fmt.Fprintf(stdout, "%s %d keys in %d namespaces from %s to %s\n", verb, keys, len(copies), srcName, dstName)
	return nil
}
