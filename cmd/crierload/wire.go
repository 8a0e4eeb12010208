package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// stanzaCounts reads crier_stanzas_total from a /metrics URL: the count of
// each top-level element kind on crier's stream, by direction, as crier's
// tap saw it on the wire ("out message", "in sm_r", ...).
func stanzaCounts(url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "crier_stanzas_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		var dir, kind string
		for _, l := range strings.Split(labels, ",") {
			k, val, _ := strings.Cut(l, "=")
			val = strings.Trim(val, `"`)
			switch k {
			case "direction":
				dir = val
			case "kind":
				kind = val
			}
		}
		out[dir+" "+kind] += v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no crier_stanzas_total series", url)
	}
	return out, nil
}

// perReply is (after - before) / replies for each kind.
func perReply(before, after map[string]float64, replies int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d / float64(replies)
		}
	}
	return out
}

// wireString formats per-reply counts in a fixed order.
func wireString(w map[string]float64) string {
	if len(w) == 0 {
		return "–"
	}
	var b strings.Builder
	for _, k := range []string{"in message", "out message", "in sm_r", "out sm_a", "out sm_r", "in sm_a", "in iq", "out iq", "in presence", "out presence", "in other", "out other"} {
		if v, ok := w[k]; ok {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %.3f", k, v)
		}
	}
	return b.String()
}
