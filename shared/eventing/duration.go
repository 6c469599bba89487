package eventing

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses the ISO-8601 durations Knative delivery specs use
// (backoffDelay, timeout): "PT0.5S", "PT1M", "PT1H30M", "P1DT2H", "PT0,25S".
// It accepts days, hours, minutes and seconds, each at most once and in
// that order, with a fraction (point or comma) on the last component only.
// Years, months and weeks are refused because they have no fixed length;
// negative durations are refused because no delay can be negative.
func ParseDuration(s string) (time.Duration, error) {
	bad := func(why string) (time.Duration, error) {
		return 0, fmt.Errorf("ISO-8601 duration %q: %s", s, why)
	}
	rest := strings.ToUpper(s)
	if !strings.HasPrefix(rest, "P") {
		return bad(`must start with "P" (for example PT0.5S)`)
	}
	rest = rest[1:]
	if rest == "" || rest == "T" {
		return bad("has no components")
	}
	units := []struct {
		designator byte
		unit       time.Duration
		timePart   bool
	}{
		{'D', 24 * time.Hour, false},
		{'H', time.Hour, true},
		{'M', time.Minute, true},
		{'S', time.Second, true},
	}
	var (
		total    float64
		inTime   bool
		next     int // index into units of the smallest designator still allowed
		sawComp  bool
		sawFract bool
	)
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return bad(`has "T" twice`)
			}
			inTime = true
			rest = rest[1:]
			if rest == "" {
				return bad(`has nothing after "T"`)
			}
			continue
		}
		if sawFract {
			return bad("has a fraction on a component that is not the last")
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.' || rest[i] == ',') {
			i++
		}
		if i == 0 || i == len(rest) {
			return bad("has a number without a designator or a designator without a number")
		}
		num := strings.ReplaceAll(rest[:i], ",", ".")
		d := rest[i]
		rest = rest[i+1:]
		if strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") || strings.Count(num, ".") > 1 {
			return bad("has a malformed number")
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return bad("has a malformed number")
		}
		sawFract = strings.Contains(num, ".")
		found := false
		for j := next; j < len(units); j++ {
			u := units[j]
			if u.designator != d {
				continue
			}
			if u.timePart != inTime {
				if inTime {
					return bad(fmt.Sprintf("has %q after \"T\"", d))
				}
				return bad(fmt.Sprintf("needs \"T\" before %q", d))
			}
			total += v * float64(u.unit)
			next = j + 1
			found = true
			break
		}
		if !found {
			switch d {
			case 'Y', 'W':
				return bad("uses years or weeks, which have no fixed length")
			case 'M':
				if !inTime {
					return bad("uses months, which have no fixed length (minutes need \"T\": PT1M)")
				}
			}
			return bad(fmt.Sprintf("has designator %q out of order or repeated", d))
		}
		sawComp = true
		if total >= 1<<63 {
			return bad("is too long")
		}
	}
	if !sawComp {
		return bad("has no components")
	}
	return time.Duration(math.Round(total)), nil
}
