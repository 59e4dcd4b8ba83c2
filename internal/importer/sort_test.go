package importer_test

import (
	"slices"
	"time"
)

func slicesSort(s []string) { slices.Sort(s) }

func slicesSortTimes(s []time.Time) { slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) }) }
