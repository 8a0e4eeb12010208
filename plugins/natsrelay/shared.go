package natsrelay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The shared seen-window ([ha]). Every instance keeps its own window of
// the messages it relayed (window.go); with [ha] the recipients the XMPP
// server acknowledged are also written to a JetStream KV bucket before the
// message is acked, so that a copy redelivered to another instance (its
// sender died, or its ack was lost) is acked there without being sent again.
// Only redeliveries read the bucket: a first delivery cannot have been sent
// by anyone.
//
// What remains possible is a duplicate of a stanza the instance wrote but
// died before the server's acknowledgement reached it: the receiver may have
// it, and no record says so. Both copies carry the same XEP-0359 origin-id.

const (
	// SeenBucketSuffix names the shared window's bucket after [ha] bucket.
	SeenBucketSuffix = "-seen"
	// SeenTTL is how long the shared window remembers a message: far
	// longer than any redelivery (ack_wait, nak_delay) takes.
	SeenTTL = time.Hour
	// sharedTimeout bounds one read or write of the shared window.
	sharedTimeout = 5 * time.Second
)

// errSharedWindow wraps a failed read of the shared window: the copy goes
// back to JetStream rather than risk a second send.
var errSharedWindow = errors.New("natsrelay: shared seen-window unavailable")

// sharedWindow is the seen-window's record in KV, for one plugin. Records
// are written by one goroutine (run) in batches of asynchronous publishes,
// so that many messages settling at once cost one round trip rather than
// one each.
type sharedWindow struct {
	kv      jetstream.KeyValue
	js      jetstream.JetStream
	subject string // "$KV.<bucket>."
	reqs    chan recordReq
	stop    chan struct{}
	done    chan struct{}
}

// recordReq is one record to write and what to call with its outcome.
type recordReq struct {
	key  string
	data []byte
	then func(error)
}

// recordBatch is the most records one round of the writer publishes before
// it waits for their acknowledgements.
const recordBatch = 256

// openSharedWindow opens (creating it when missing) the bucket of the shared
// window. An existing bucket is used as it is; one without a TTL is accepted
// but logged by the caller (its records are then kept until deleted).
func openSharedWindow(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*sharedWindow, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "crier relay: recipients each relayed message reached",
			History:     1,
			TTL:         SeenTTL,
			Replicas:    max(replicas, 1),
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("shared seen-window bucket %q: %w", bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("shared seen-window bucket %q: %w", bucket, err)
	}
	sw := &sharedWindow{kv: kv, js: js, subject: "$KV." + bucket + ".",
		reqs: make(chan recordReq, 4*recordBatch), stop: make(chan struct{}), done: make(chan struct{})}
	go sw.run()
	return sw, st.TTL(), nil
}

// run writes the records asked for until close: each round takes what is
// waiting (up to recordBatch), publishes it without waiting, then waits for
// every acknowledgement and reports each outcome.
func (s *sharedWindow) run() {
	defer close(s.done)
	batch := make([]recordReq, 0, recordBatch)
	futures := make([]jetstream.PubAckFuture, 0, recordBatch)
	for {
		var first recordReq
		select {
		case first = <-s.reqs:
		case <-s.stop:
			return
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < recordBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		futures = futures[:0]
		for _, r := range batch {
			f, err := s.js.PublishAsync(s.subject+r.key, r.data)
			if err != nil {
				r.then(err)
				futures = append(futures, nil)
				continue
			}
			futures = append(futures, f)
		}
		timeout := time.NewTimer(sharedTimeout)
		expired := false
		late := errors.New("natsrelay: shared seen-window: no acknowledgement in time")
		for i, f := range futures {
			if f == nil {
				continue
			}
			if expired {
				// The batch's time is up: what has no answer now fails.
				select {
				case <-f.Ok():
					batch[i].then(nil)
				case err := <-f.Err():
					batch[i].then(err)
				default:
					batch[i].then(late)
				}
				continue
			}
			select {
			case <-f.Ok():
				batch[i].then(nil)
			case err := <-f.Err():
				batch[i].then(err)
			case <-timeout.C:
				expired = true
				batch[i].then(late)
			}
		}
		timeout.Stop()
		clear(batch)
	}
}

// close stops the writer once the records asked for were written (the
// caller has waited for the messages in flight, whose acks wait for them).
func (s *sharedWindow) close() {
	close(s.stop)
	<-s.done
}

// recordAsync asks the writer to record the recipients that have the
// message, and calls then with the outcome. It never blocks: when the
// writer's queue is full the record is written on a goroutine of its own.
func (s *sharedWindow) recordAsync(durable, key string, sent []string, then func(error)) {
	slices.Sort(sent)
	r := recordReq{key: sharedKey(durable, key), data: []byte(strings.Join(sent, "\n")), then: then}
	select {
	case s.reqs <- r:
	default:
		go func() { then(s.record(context.Background(), durable, key, sent)) }()
	}
}

// sharedKey is the KV key of one message of one relay: the relay's durable
// name and a digest of the message's window key (ids may hold any byte).
func sharedKey(durable, key string) string {
	sum := sha256.Sum256([]byte(key))
	return durable + "." + hex.EncodeToString(sum[:16])
}

// lookup returns the recipients recorded as having the message.
func (s *sharedWindow) lookup(ctx context.Context, durable, key string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	e, err := s.kv.Get(ctx, sharedKey(durable, key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSharedWindow, err)
	}
	if len(e.Value()) == 0 {
		return nil, nil
	}
	return strings.Split(string(e.Value()), "\n"), nil
}

// record writes the recipients that have the message. It replaces the
// previous record: sent holds the sender's whole view, which includes what
// it looked up.
func (s *sharedWindow) record(ctx context.Context, durable, key string, sent []string) error {
	ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	slices.Sort(sent)
	_, err := s.kv.Put(ctx, sharedKey(durable, key), []byte(strings.Join(sent, "\n")))
	return err
}
