//go:build race

package insights

// raceEnabled: the race detector slows the long synthetic tests tenfold.
const raceEnabled = true
