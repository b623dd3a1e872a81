package backends

import "time"

// rampSteps is how many times a slow start ramp is re-evaluated. Each step
// rebuilds the pool, so the ramp is a staircase of this many equal steps; 20
// is smooth enough for traffic and cheap enough for a pool rebuild.
const rampSteps = 20

// rampWeight returns the effective weight of a backend of the given weight
// whose ramp started at start, and when the ramp's next step is due (zero when
// the backend has its full weight).
//
// With slow start on, every weight in the pool is scaled by rampSteps, so a
// backend at full weight w counts w*rampSteps and one in step k of its ramp
// counts w*k (at least 1, so a fresh backend gets a trickle and its checks
// see real traffic). Only ratios matter to the policies, and prepare reduces
// the schedule's weights by their gcd, so the scale costs nothing.
//
// A zero start means the backend joined an empty pool and does not ramp. A
// start in the future (a clock step backwards) is treated as done, so a
// backend can never be stuck at a trickle.
func rampWeight(weight int, start, now time.Time, window time.Duration) (int, time.Time) {
	full := weight * rampSteps
	elapsed := now.Sub(start)
	if start.IsZero() || window <= 0 || elapsed < 0 || elapsed >= window {
		return full, time.Time{}
	}
	// Floating point keeps the arithmetic safe for any window; exact step
	// boundaries do not matter, only that the next one is after now.
	k := int(float64(elapsed) / float64(window) * rampSteps)
	k = min(max(k, 0), rampSteps-1)
	due := start.Add(time.Duration(float64(window) * float64(k+1) / rampSteps))
	if !due.After(now) {
		due = now.Add(time.Millisecond)
	}
	return max(weight*k, 1), due
}
