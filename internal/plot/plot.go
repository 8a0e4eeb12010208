// Package plot draws line charts into PNG files with the standard library
// only: panels stacked top to bottom, each scaled from zero to its largest
// value on both axes, with a grey line at every quarter of the height. It
// has no text: the caller says what the axes are where the image is shown.
package plot

import (
	"image"
	"image/color"
	"image/png"
	"os"
)

// Point is one point of a series.
type Point struct{ X, Y float64 }

// Panel is one series in a panel of its own.
type Panel struct {
	Points []Point
	Color  color.RGBA
	// XMax, when positive, is the right end of the X axis (else the
	// largest X of the points).
	XMax float64
}

// Colours for panels.
var (
	Blue  = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	Red   = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	Green = color.RGBA{0x2c, 0xa0, 0x2c, 0xff}
)

// Plot sizes, in pixels.
const (
	Width, PanelHeight, margin = 900, 200, 20
)

// Write draws panels into a PNG file at path. A dark vertical line marks
// X = mark in every panel when mark is positive.
func Write(path string, panels []Panel, mark float64) error {
	h := len(panels)*PanelHeight + (len(panels)+1)*margin
	img := image.NewRGBA(image.Rect(0, 0, Width, max(h, 2*margin)))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	grid := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	axis := color.RGBA{0x44, 0x44, 0x44, 0xff}
	for p, pn := range panels {
		top := margin + p*(PanelHeight+margin)
		r := image.Rect(margin, top, Width-margin, top+PanelHeight)
		xmax, ymax := pn.XMax, 0.0
		for _, pt := range pn.Points {
			if pn.XMax <= 0 {
				xmax = max(xmax, pt.X)
			}
			ymax = max(ymax, pt.Y)
		}
		if xmax <= 0 {
			xmax = 1
		}
		if ymax <= 0 {
			ymax = 1
		}
		for q := 1; q <= 4; q++ {
			y := r.Max.Y - q*PanelHeight/4
			line(img, r.Min.X, y, r.Max.X, y, grid)
		}
		if mark > 0 && mark < xmax {
			wx := r.Min.X + int(float64(r.Dx())*mark/xmax)
			line(img, wx, r.Min.Y, wx, r.Max.Y, axis)
		}
		line(img, r.Min.X, r.Max.Y, r.Max.X, r.Max.Y, axis)
		line(img, r.Min.X, r.Min.Y, r.Min.X, r.Max.Y, axis)
		px, py := -1, -1
		for _, pt := range pn.Points {
			x := r.Min.X + int(float64(r.Dx())*min(pt.X, xmax)/xmax)
			y := r.Max.Y - int(float64(PanelHeight)*pt.Y/ymax)
			if px >= 0 {
				thick(img, px, py, x, y, pn.Color)
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
