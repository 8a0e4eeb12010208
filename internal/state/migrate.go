package state

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// ErrNotEmpty is returned by Copy when a namespace it would write already
// holds keys in the destination and CopyOptions.Overwrite is not set.
var ErrNotEmpty = errors.New("state: destination namespace is not empty")

// Lister is a Store that lists its namespaces; every backend of this
// package is one.
type Lister interface {
	// Namespaces returns the names of the namespaces in the store, sorted.
	Namespaces() ([]string, error)
}

// CopyOptions tunes Copy.
type CopyOptions struct {
	// DryRun reads the source and checks the destination, and writes
	// nothing.
	DryRun bool
	// Overwrite lets Copy write into destination namespaces that hold keys
	// already: the source's keys replace theirs, others stay.
	Overwrite bool
}

// NamespaceCopy is what Copy did (or would do) with one namespace.
type NamespaceCopy struct {
	Name     string
	Schema   int
	Keys     int // keys copied
	Expiring int // of which with an expiry time
	Existing int // keys the destination held before
}

// copyBatch is how many keys one destination transaction writes: a KV
// commit holds at most 1000 messages, and an expiring key takes two.
const copyBatch = 400

// Copy copies every namespace of src into dst: keys, values, expiry times
// and schema versions. Keys that expired and were not collected yet are not
// copied. src must be a Lister. A destination namespace at a newer schema
// than the source's, or one holding keys (unless opts.Overwrite), stops the
// copy before anything is written; nothing is deleted from src. The copy is
// not one transaction: a failure partway leaves the namespaces before it
// copied, and running Copy again with Overwrite completes it.
func Copy(dst, src Store, opts CopyOptions) ([]NamespaceCopy, error) {
	l, ok := src.(Lister)
	if !ok {
		return nil, fmt.Errorf("state: the source store cannot list its namespaces")
	}
	names, err := l.Namespaces()
	if err != nil {
		return nil, err
	}
	type plan struct {
		NamespaceCopy
		src Namespace
	}
	var plans []plan
	// First every check, then every write.
	for _, name := range names {
		sn, err := src.Namespace(name, math.MaxInt32)
		if err != nil {
			return nil, fmt.Errorf("state: source namespace %q: %w", name, err)
		}
		p := plan{NamespaceCopy: NamespaceCopy{Name: name, Schema: sn.Schema()}, src: sn}
		err = sn.View(func(tx Tx) error {
			return tx.ForEach("", func(key string, _ []byte) error {
				p.Keys++
				if _, ok := tx.Expiry(key); ok {
					p.Expiring++
				}
				return nil
			})
		})
		if err != nil {
			return nil, fmt.Errorf("state: reading namespace %q: %w", name, err)
		}
		if dl, ok := dst.(Lister); ok {
			existing, err := dl.Namespaces()
			if err != nil {
				return nil, err
			}
			if i := sort.SearchStrings(existing, name); i < len(existing) && existing[i] == name {
				dn, err := dst.Namespace(name, p.Schema)
				if err != nil {
					return nil, fmt.Errorf("state: destination namespace %q: %w", name, err)
				}
				err = dn.View(func(tx Tx) error {
					return tx.ForEach("", func(string, []byte) error { p.Existing++; return nil })
				})
				if err != nil {
					return nil, fmt.Errorf("state: reading destination namespace %q: %w", name, err)
				}
			}
		}
		if p.Existing > 0 && !opts.Overwrite {
			return nil, fmt.Errorf("%w: %q holds %d keys", ErrNotEmpty, name, p.Existing)
		}
		plans = append(plans, p)
	}
	out := make([]NamespaceCopy, 0, len(plans))
	for _, p := range plans {
		out = append(out, p.NamespaceCopy)
	}
	if opts.DryRun {
		return out, nil
	}
	for _, p := range plans {
		if err := copyNamespace(dst, p.src, p.Schema); err != nil {
			return out, fmt.Errorf("state: copying namespace %q: %w", p.Name, err)
		}
	}
	return out, nil
}

// copyNamespace writes the keys of sn into dst's namespace of the same name
// in batches, then sets its schema.
func copyNamespace(dst Store, sn Namespace, schema int) error {
	dn, err := dst.Namespace(sn.Name(), schema)
	if err != nil {
		return err
	}
	type kv struct {
		key, value string
		at         time.Time
		expires    bool
	}
	var all []kv
	err = sn.View(func(tx Tx) error {
		return tx.ForEach("", func(key string, value []byte) error {
			e := kv{key: key, value: string(value)}
			e.at, e.expires = tx.Expiry(key)
			all = append(all, e)
			return nil
		})
	})
	if err != nil {
		return err
	}
	for len(all) > 0 {
		batch := all[:min(copyBatch, len(all))]
		all = all[len(batch):]
		err := dn.Update(func(tx Tx) error {
			for _, e := range batch {
				var err error
				if e.expires {
					err = tx.PutExpiring(e.key, []byte(e.value), e.at)
				} else {
					err = tx.Put(e.key, []byte(e.value))
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if dn.Schema() != schema {
		return dn.SetSchema(schema)
	}
	return nil
}
