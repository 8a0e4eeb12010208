package main

import (
	"slices"
	"sync"
	"time"

	"crier/internal/plot"
)

// rssSample is the bot's resident memory at one moment of a run.
type rssSample struct {
	at time.Duration
	mb float64
}

// rssSampler reads a process's RSS every period until stop is called.
type rssSampler struct {
	mu      sync.Mutex
	samples []rssSample
	stop    func()
}

func sampleRSS(pid int, period time.Duration) *rssSampler {
	s := &rssSampler{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	began := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			if mb, err := rssMB(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, rssSample{time.Since(began), mb})
				s.mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	s.stop = sync.OnceFunc(func() { close(done); wg.Wait() })
	return s
}

// peak returns the largest sample, in MB.
func (s *rssSampler) peak() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := 0.0
	for _, x := range s.samples {
		p = max(p, x.mb)
	}
	return p
}

// writePlots draws prefix-latency.png (the distribution of the round
// trips: the fraction of replies, up the Y axis, that came within the
// time along the X axis, up to the 99.9th percentile) and, when rss has samples,
// prefix-rss.png (the bot's RSS in MB over the run's seconds).
func writePlots(prefix string, rtts []time.Duration, rss *rssSampler) error {
	sorted := slices.Clone(rtts)
	slices.Sort(sorted)
	var cdf []plot.Point
	for i, d := range sorted {
		cdf = append(cdf, plot.Point{X: float64(d.Microseconds()) / 1000, Y: float64(i+1) / float64(len(sorted))})
	}
	// The X axis ends at the 99.9th percentile: the slowest few would
	// squeeze the rest into its first pixels.
	xmax := 0.0
	if len(sorted) > 0 {
		xmax = float64(quantile(sorted, 0.999).Microseconds()) / 1000
	}
	if err := plot.Write(prefix+"-latency.png", []plot.Panel{{Points: cdf, Color: plot.Blue, XMax: xmax}}, 0); err != nil {
		return err
	}
	if rss == nil {
		return nil
	}
	rss.mu.Lock()
	var pts []plot.Point
	for _, s := range rss.samples {
		pts = append(pts, plot.Point{X: s.at.Seconds(), Y: s.mb})
	}
	rss.mu.Unlock()
	if len(pts) == 0 {
		return nil
	}
	return plot.Write(prefix+"-rss.png", []plot.Panel{{Points: pts, Color: plot.Green}}, 0)
}
