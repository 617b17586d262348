package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize parses a byte count with an optional binary suffix: 512, 10K,
// 200M, 1.5G, 2T (K=1024). A trailing "B" or "iB" is accepted.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 500M, 200G)", s)
	}
	return int64(v * float64(mult)), nil
}
