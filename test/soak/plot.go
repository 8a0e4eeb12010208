package soak

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"time"
)

// Sample is one reading of crier's /metrics.
type Sample struct {
	At         time.Duration // since the soak started
	Goroutines float64
	Heap       float64 // go_memstats_heap_inuse_bytes
	RSS        float64 // process_resident_memory_bytes
}

// Plot sizes, in pixels: each series gets a panel of its own, stacked.
const (
	plotW, panelH, margin = 900, 200, 20
)

// Panel colours: goroutines, heap, RSS.
var seriesColors = []color.RGBA{{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}}

// WritePNG draws the three series of samples over time into a PNG file at
// path: goroutines on top, heap in the middle, RSS at the bottom, each
// panel scaled from 0 to its series' maximum, with a grey line at every
// quarter of that maximum and a dark line at the end of the warm-up.
func WritePNG(path string, samples []Sample, warmup time.Duration) error {
	h := 3*panelH + 4*margin
	img := image.NewRGBA(image.Rect(0, 0, plotW, h))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	if len(samples) == 0 {
		return encode(path, img)
	}
	end := samples[len(samples)-1].At
	if end <= 0 {
		end = time.Second
	}
	get := []func(Sample) float64{
		func(s Sample) float64 { return s.Goroutines },
		func(s Sample) float64 { return s.Heap },
		func(s Sample) float64 { return s.RSS },
	}
	grid := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	axis := color.RGBA{0x44, 0x44, 0x44, 0xff}
	for p, f := range get {
		top := margin + p*(panelH+margin)
		r := image.Rect(margin, top, plotW-margin, top+panelH)
		peak := 0.0
		for _, s := range samples {
			peak = max(peak, f(s))
		}
		if peak <= 0 {
			peak = 1
		}
		for q := 1; q <= 4; q++ {
			y := r.Max.Y - q*panelH/4
			line(img, r.Min.X, y, r.Max.X, y, grid)
		}
		wx := r.Min.X + int(float64(r.Dx())*float64(warmup)/float64(end))
		if wx < r.Max.X {
			line(img, wx, r.Min.Y, wx, r.Max.Y, axis)
		}
		line(img, r.Min.X, r.Max.Y, r.Max.X, r.Max.Y, axis)
		line(img, r.Min.X, r.Min.Y, r.Min.X, r.Max.Y, axis)
		px, py := -1, -1
		for _, s := range samples {
			x := r.Min.X + int(float64(r.Dx())*float64(s.At)/float64(end))
			y := r.Max.Y - int(float64(panelH)*f(s)/peak)
			if px >= 0 {
				thick(img, px, py, x, y, seriesColors[p])
			}
			px, py = x, y
		}
	}
	return encode(path, img)
}

func encode(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// thick draws a line two pixels wide.
func thick(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	line(img, x0, y0, x1, y1, c)
	line(img, x0, y0+1, x1, y1+1, c)
}

// line draws a straight line with Bresenham's algorithm.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
