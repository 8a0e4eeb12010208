package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ClaimTTL is how long the key of a claimed tick lives: longer than any
// delay between two instances firing the same tick (clock offsets, a busy
// machine), short enough that keys do not pile up.
const ClaimTTL = 10 * time.Minute

// ClaimOnce claims the tick of the cron job name for this instance: of all
// the instances that call it for the same job and tick, one gets true. It
// creates the key claim.<name>.<tick in Unix seconds> with ClaimTTL, so
// tick must be the scheduled time of the tick (the same on every instance,
// e.g. the schedule's Next of the previous tick), not the moment the job
// ran; it is truncated to the second. An error (no answer from NATS) means
// the claim is unknown: a caller that skips the tick then fires it at most
// once, one that fires it anyway at least once.
func ClaimOnce(ctx context.Context, kv jetstream.KeyValue, name string, tick time.Time) (bool, error) {
	if name == "" {
		return false, fmt.Errorf("%w: empty job name", ErrBadOptions)
	}
	key := "claim." + escape(name) + "." + strconv.FormatInt(tick.Unix(), 10)
	host, _ := os.Hostname()
	_, err := kv.Create(ctx, key, []byte(host+"/"+strconv.Itoa(os.Getpid())), jetstream.KeyTTL(ClaimTTL))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("lease: claim %q at %v: %w", name, tick.UTC(), err)
}

// Fence admits an action of the term token on resource: it records the
// highest token seen for resource in the bucket (key fence.<resource>) and
// refuses an older one with ErrFenced, so that a leader whose term ended
// while it was cut off cannot act after the next leader did. It is a gate
// and not a transaction with the action: an action on data in the same
// bucket should carry the token itself.
func Fence(ctx context.Context, kv jetstream.KeyValue, resource string, token uint64) error {
	if token == 0 {
		return fmt.Errorf("%w: token 0 is no term", ErrFenced)
	}
	key := "fence." + escape(resource)
	val := []byte(strconv.FormatUint(token, 10))
	for range 10 {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err = kv.Create(ctx, key, val); err == nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("lease: fence %q: %w", resource, err)
		}
		seen, perr := strconv.ParseUint(string(e.Value()), 10, 64)
		switch {
		case perr != nil:
			return fmt.Errorf("lease: fence %q holds %q", resource, e.Value())
		case seen > token:
			return fmt.Errorf("%w: %q saw term %d, this is %d", ErrFenced, resource, seen, token)
		case seen == token:
			return nil
		}
		if _, err := kv.Update(ctx, key, val, e.Revision()); err == nil {
			return nil
		} else if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("lease: fence %q: %w", resource, err)
		}
	}
	return fmt.Errorf("lease: fence %q: too many concurrent writers", resource)
}

// escape maps s into one token of KV's key alphabet: letters, digits, '-',
// '_' and '/' stay, every other byte is '=' and two hex digits.
func escape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '/' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}
