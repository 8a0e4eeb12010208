package state

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrFenced is returned by a write of a fenced store after another
// instance raised the fence with a newer token: NATS refused it, nothing of
// it was written.
var ErrFenced = errors.New("state: write fenced: a newer leader holds the fence")

// Fencer is a store whose writes the server can refuse once a newer leader
// has taken over (the KV backend). While Fence(token) is in force, every
// commit carries a check that the fence key is still the one this instance
// wrote; a leader that won later rewrites the key, and from then on NATS
// refuses the stale leader's commits whatever its clock believes.
type Fencer interface {
	// Fence writes token into the fence key, unless the key holds a newer
	// token of the same epoch already (ErrFenced: this instance's term is
	// stale), and fences every write from then on. The epoch names where
	// the tokens come from (the lease bucket's creation): a fence of
	// another epoch is replaced whatever its token, so that a lease bucket
	// made anew, whose tokens start again from 1, does not lock every
	// leader out. refused, when not nil, is called (on the writing
	// goroutine: it must not block) for each write refused for the fence,
	// with the error the write returns.
	Fence(epoch string, token uint64, refused func(error)) error
	// Unfence stops fencing the writes of the term token (a standby's own
	// writes are not fenced); a later term's fence stays.
	Unfence(token uint64)
}

// Keys of the fence in the state bucket. They have no dot-suffix of a
// namespace's (.m, .d., .e.), so no namespace can hold them.
const (
	// kvFence holds the token of the last leader that fenced the store.
	kvFence = "fence"
	// kvFenceCheck is the subject of the message each fenced commit adds:
	// it carries the check on kvFence's revision (a message has room for
	// one such check, and the data messages check their own keys) and the
	// writer's token. History 1 keeps only the last.
	kvFenceCheck = "fence.w"
)

// kvFenceState is a fence in force.
type kvFenceState struct {
	token   uint64
	rev     uint64 // kvFence's revision as this instance wrote it
	refused func(error)
}

// kvFencing is the fence part of a kvStore.
type kvFencing struct {
	mu sync.Mutex // guards cur
	// commitMu serialises fenced commits: on a cluster, two batches in
	// flight that check the same subject make the second fail.
	commitMu sync.Mutex
	cur      *kvFenceState
}

// Fence raises the fence for token; see Fencer.
func (s *kvStore) Fence(epoch string, token uint64, refused func(error)) error {
	if token == 0 {
		return fmt.Errorf("%w: token 0 is no term", ErrFenced)
	}
	if strings.ContainsAny(epoch, " \n") {
		return fmt.Errorf("state: fence: epoch %q has a space", epoch)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	for range 10 {
		e, err := s.get(kvFence)
		if err != nil {
			return fmt.Errorf("state: fence: %w", err)
		}
		if e.rev != 0 && !e.deleted {
			seen, seenEpoch, perr := parseFence(e.data)
			switch {
			case perr != nil:
				return fmt.Errorf("%w: bucket %q: fence key holds %q", ErrCorrupt, s.bucket, e.data)
			case seenEpoch != epoch:
				s.log.Warn("state: replacing the fence of another lease bucket", "bucket", s.bucket, "fence", string(e.data), "epoch", epoch)
			case seen > token:
				return fmt.Errorf("%w: the fence holds token %d, this term's is %d", ErrFenced, seen, token)
			}
		}
		rev := e.rev
		val := strconv.FormatUint(token, 10)
		if epoch != "" {
			val += " " + epoch
		}
		m := s.putMsg(kvFence, []byte(val), &rev)
		seq, err := s.commitSeq([]*nats.Msg{m})
		if errors.Is(err, errConflict) {
			continue // raised by another meanwhile: look again
		}
		if err != nil {
			return fmt.Errorf("state: fence: %w", err)
		}
		s.fencing.mu.Lock()
		s.fencing.cur = &kvFenceState{token: token, rev: seq, refused: refused}
		s.fencing.mu.Unlock()
		s.log.Info("state: writes fenced", "bucket", s.bucket, "token", token, "fence_revision", seq)
		return nil
	}
	return fmt.Errorf("state: fence: %w", ErrConflict)
}

// parseFence reads the fence key's value: the token, then a space and the
// epoch when there is one.
func parseFence(b []byte) (token uint64, epoch string, err error) {
	t, epoch, _ := strings.Cut(string(b), " ")
	token, err = strconv.ParseUint(t, 10, 64)
	return token, epoch, err
}

// Unfence lifts the fence of term token; see Fencer.
func (s *kvStore) Unfence(token uint64) {
	s.fencing.mu.Lock()
	defer s.fencing.mu.Unlock()
	if s.fencing.cur != nil && s.fencing.cur.token == token {
		s.fencing.cur = nil
	}
}

// fence returns the fence in force, nil when none.
func (s *kvStore) fence() *kvFenceState {
	s.fencing.mu.Lock()
	defer s.fencing.mu.Unlock()
	return s.fencing.cur
}

// fencedCommit commits msgs with the fence's check added to the batch. A
// refusal that the fence key's new revision explains is ErrFenced; any
// other is the commit's own error (a conflict on a key, run again by
// Update).
func (s *kvStore) fencedCommit(f *kvFenceState, msgs []*nats.Msg) error {
	s.fencing.commitMu.Lock()
	defer s.fencing.commitMu.Unlock()
	check := nats.NewMsg(s.prefix + kvFenceCheck)
	check.Data = []byte(strconv.FormatUint(f.token, 10))
	check.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(f.rev, 10))
	check.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, s.prefix+kvFence)
	_, err := s.commitSeq(append([]*nats.Msg{check}, msgs...))
	if !errors.Is(err, errConflict) {
		return err
	}
	e, rerr := s.get(kvFence)
	if rerr != nil || e.rev == f.rev {
		return err // a key's conflict (or unknown: let Update run again)
	}
	ferr := fmt.Errorf("%w: the fence key is at revision %d (%q), this term's (token %d) wrote %d: %v",
		ErrFenced, e.rev, e.data, f.token, f.rev, err)
	if f.refused != nil {
		f.refused(ferr)
	}
	return ferr
}
