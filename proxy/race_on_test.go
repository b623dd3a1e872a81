//go:build race

package proxy

// raceEnabled: the race detector multiplies memory, so RSS figures are
// only logged, not checked.
const raceEnabled = true
