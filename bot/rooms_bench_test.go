package bot

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"crier/internal/miniserver"
)

// BenchmarkJoinRooms starts a bot in 10, 100 and 1,000 rooms of the mini
// server (in this process) and reports the time from the session being
// bound to every room joined, and the heap after a collection with every
// room joined, per room (the server's rooms and its fixed cost included,
// since it runs here).
//
//	go test -run '^$' -bench JoinRooms -benchtime 3x ./bot/
func BenchmarkJoinRooms(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			jids := manyRooms(n)
			var joined time.Duration
			var heap float64
			for i := 0; i < b.N; i++ {
				base := heapAfterGC()
				srv := startMini(b, miniserver.Config{}) // a fresh one: its rooms count in every iteration
				h := roomsBot(b, srv, jids, "", Options{SelfPing: -1})
				var bound time.Time
				deadline := time.Now().Add(time.Minute)
				for {
					ok, lines := h.bot.Ready()
					if bound.IsZero() && len(lines) > 0 && lines[0] == "session: bound" {
						bound = time.Now()
					}
					if ok {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("not all %d rooms joined within a minute", n)
					}
					time.Sleep(time.Millisecond)
				}
				joined += time.Since(bound)
				time.Sleep(200 * time.Millisecond) // the last answers are read
				heap += float64(heapAfterGC()) - float64(base)
				h.shutdown()
				srv.Close()
			}
			b.ReportMetric(float64(joined.Microseconds())/1000/float64(b.N), "ms/all-joined")
			b.ReportMetric(heap/float64(b.N)/float64(n+1), "heap-B/room")
		})
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
