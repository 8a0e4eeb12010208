package lease

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"crier/internal/natstest"
)

func TestClaimOnce(t *testing.T) {
	srv := natstest.Start(t)
	const instances, ticks = 3, 20
	base := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	won := map[string][]int{}
	var wg sync.WaitGroup
	for i := range instances {
		_, js := natstest.Connect(t, srv.URL())
		ctx := natstest.Context(t, 30*time.Second)
		kv, err := Bucket(ctx, js, "ha", 1, testTTL)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for k := range ticks {
				for _, job := range []string{"greeting", "report.daily"} {
					// Each instance's clock reads the tick a little
					// differently: the claim is of the second.
					tick := base.Add(time.Duration(k)*time.Minute + time.Duration(i)*time.Millisecond)
					ok, err := ClaimOnce(ctx, kv, job, tick)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						mu.Lock()
						key := fmt.Sprintf("%s@%d", job, k)
						won[key] = append(won[key], i)
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	if len(won) != 2*ticks {
		t.Errorf("%d ticks claimed, want %d", len(won), 2*ticks)
	}
	for k, who := range won {
		if len(who) != 1 {
			t.Errorf("tick %s claimed by %v", k, who)
		}
	}
	_, js := natstest.Connect(t, srv.URL())
	ctx := natstest.Context(t, 10*time.Second)
	kv, err := Bucket(ctx, js, "ha", 1, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ClaimOnce(ctx, kv, "", base); !errors.Is(err, ErrBadOptions) {
		t.Errorf("empty job name: %v", err)
	}
	// The key lives ClaimTTL: the server was given the TTL.
	msg, err := js.Conn().Request("$JS.API.DIRECT.GET.KV_ha.$KV.ha.claim.greeting."+fmt.Sprint(base.Unix()), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("Nats-TTL"); got != ClaimTTL.String() {
		t.Errorf("claim key TTL header %q, want %q", got, ClaimTTL.String())
	}
}

func TestFence(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	ctx := natstest.Context(t, 10*time.Second)
	kv, err := Bucket(ctx, js, "ha", 1, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		token  uint64
		fenced bool
	}{{5, false}, {5, false}, {9, false}, {5, true}, {8, true}, {9, false}, {12, false}, {0, true}}
	for _, s := range steps {
		err := Fence(ctx, kv, "room:lobby@conference.example.org", s.token)
		if got := errors.Is(err, ErrFenced); got != s.fenced {
			t.Errorf("Fence(%d) = %v, want fenced %v", s.token, err, s.fenced)
		}
	}
	// Resources are separate.
	if err := Fence(ctx, kv, "other", 3); err != nil {
		t.Errorf("other resource: %v", err)
	}
}
