package plot

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteDrawsSeries: the PNG has one panel per series and the series'
// colour where its points are.
func TestWriteDrawsSeries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.png")
	pts := []Point{{0, 0}, {1, 1}, {2, 0.5}}
	if err := Write(path, []Panel{{Points: pts, Color: Blue}, {Points: pts, Color: Red}}, 1); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != Width || b.Dy() != 2*PanelHeight+3*margin {
		t.Fatalf("image %v, want %dx%d", b, Width, 2*PanelHeight+3*margin)
	}
	count := map[[3]uint32]int{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			count[[3]uint32{r >> 8, g >> 8, b >> 8}]++
		}
	}
	for name, c := range map[string][3]uint32{"blue": {0x1f, 0x77, 0xb4}, "red": {0xd6, 0x27, 0x28}} {
		if count[c] < Width/2 {
			t.Errorf("%d %s pixels, want a line across the panel", count[c], name)
		}
	}
}
