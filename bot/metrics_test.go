package bot

import "testing"

// counter sums every series of the named metric family.
func counter(t *testing.T, b *Bot, name string) float64 {
	t.Helper()
	mfs, err := b.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func gauge(t *testing.T, b *Bot, name string) float64 { return counter(t, b, name) }
