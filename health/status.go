package health

import (
	"fmt"
	"strconv"
	"strings"
)

// StatusRanges is a parsed health.http.expect_status: the HTTP statuses an
// http check accepts.
type StatusRanges []StatusRange

// StatusRange is an inclusive range of HTTP statuses; Lo == Hi for one code.
type StatusRange struct{ Lo, Hi int }

// ParseStatusRanges parses a comma-separated list of statuses and inclusive
// ranges, such as "200-399" or "200,204,300-399". Statuses are 100 to 599;
// spaces around items are allowed.
func ParseStatusRanges(s string) (StatusRanges, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty status list (want e.g. \"200-399\" or \"200,204\")")
	}
	var out StatusRanges
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("empty item in %q", s)
		}
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := parseStatus(strings.TrimSpace(lo), item)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseStatus(strings.TrimSpace(hi), item); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %q is reversed", item)
			}
		}
		out = append(out, StatusRange{Lo: a, Hi: b})
	}
	return out, nil
}

func parseStatus(s, item string) (int, error) {
	// Atoi alone would take "+200"; a status is digits only.
	if s == "" || strings.TrimLeft(s, "0123456789") != "" || len(s) > 3 {
		return 0, fmt.Errorf("%q is not a status or a range of statuses", item)
	}
	n, _ := strconv.Atoi(s)
	if n < 100 || n > 599 {
		return 0, fmt.Errorf("status %d in %q is outside 100-599", n, item)
	}
	return n, nil
}

// Contains reports whether code is one of the accepted statuses.
func (r StatusRanges) Contains(code int) bool {
	for _, x := range r {
		if code >= x.Lo && code <= x.Hi {
			return true
		}
	}
	return false
}

// String formats the ranges in the syntax ParseStatusRanges reads.
func (r StatusRanges) String() string {
	var b strings.Builder
	for i, x := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(x.Lo))
		if x.Hi != x.Lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(x.Hi))
		}
	}
	return b.String()
}
