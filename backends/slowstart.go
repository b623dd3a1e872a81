package backends

import "time"

// rampSteps is how many times a slow start ramp is re-evaluated.
const rampSteps = 20

// rampWeight scales weight by elapsed/total (at least 1, so a ramping
// backend still gets a trickle) and returns when the next step is due,
// keeping next if it is sooner.
func rampWeight(weight int, elapsed, total time.Duration, now, next time.Time) (int, time.Time) {
	if elapsed >= total || elapsed < 0 {
		return weight * rampSteps, next
	}
	// Weights are scaled up so the ramp has resolution even for weight 1;
	// prepare divides every weight by their gcd afterwards.
	w := int(int64(weight*rampSteps) * int64(elapsed) / int64(total))
	if w < 1 {
		w = 1
	}
	step := total / rampSteps
	due := now.Add(step - elapsed%step)
	if next.IsZero() || due.Before(next) {
		next = due
	}
	return w, next
}
