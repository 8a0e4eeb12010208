package soak

import (
	"time"

	"crier/internal/plot"
)

// Sample is one reading of crier's /metrics.
type Sample struct {
	At         time.Duration // since the soak started
	Goroutines float64
	Heap       float64 // go_memstats_heap_inuse_bytes
	RSS        float64 // process_resident_memory_bytes
}

// WritePNG draws the three series of samples over time into a PNG file at
// path: goroutines on top, heap in the middle, RSS at the bottom, each
// panel scaled from 0 to its series' maximum, with a grey line at every
// quarter of that maximum and a dark line at the end of the warm-up.
func WritePNG(path string, samples []Sample, warmup time.Duration) error {
	var end time.Duration
	if len(samples) > 0 {
		end = samples[len(samples)-1].At
	}
	if end <= 0 {
		end = time.Second
	}
	panels := make([]plot.Panel, 3)
	for i, c := range []plot.Panel{{Color: plot.Blue}, {Color: plot.Red}, {Color: plot.Green}} {
		c.XMax = end.Seconds()
		panels[i] = c
	}
	for _, s := range samples {
		x := s.At.Seconds()
		panels[0].Points = append(panels[0].Points, plot.Point{X: x, Y: s.Goroutines})
		panels[1].Points = append(panels[1].Points, plot.Point{X: x, Y: s.Heap})
		panels[2].Points = append(panels[2].Points, plot.Point{X: x, Y: s.RSS})
	}
	return plot.Write(path, panels, warmup.Seconds())
}
