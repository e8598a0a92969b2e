package idalloc

import (
	"cmp"
	"slices"
)

// firstFit returns the lowest BlockSize-aligned start inside pool such that
// [start, start+size) overlaps no entry. Entries may be unsorted and may lie
// partly or wholly outside pool (left over from an earlier pool); they are
// avoided all the same.
func firstFit(pool Pool, entries []Entry, size uint32) (uint32, bool) {
	if size == 0 {
		return 0, false
	}
	used := make([]Range, 0, len(entries))
	for _, e := range entries {
		used = append(used, e.Range)
	}
	slices.SortFunc(used, func(x, y Range) int { return cmp.Compare(x.Start, y.Start) })

	end := uint64(pool.Start) + uint64(pool.Size)
	want := uint64(size)
	cand := alignUp(uint64(pool.Start))
	for _, r := range used {
		if cand+want > end {
			return 0, false
		}
		if r.End() <= cand {
			continue
		}
		if uint64(r.Start) >= cand+want {
			// used is sorted by start: every later range starts even later.
			break
		}
		cand = alignUp(r.End())
	}
	if cand+want > end {
		return 0, false
	}
	return uint32(cand), true
}

func alignUp(x uint64) uint64 { return (x + BlockSize - 1) / BlockSize * BlockSize }

// partitionLive splits entries into those l reports alive and those it
// reports dead, preserving order.
func partitionLive(entries []Entry, l Liveness) (live, dead []Entry) {
	live = make([]Entry, 0, len(entries))
	for _, e := range entries {
		if l.Alive(e) {
			live = append(live, e)
		} else {
			dead = append(dead, e)
		}
	}
	return live, dead
}

// usedInPool counts the ids of entries that fall inside pool.
func usedInPool(pool Pool, entries []Entry) uint64 {
	var n uint64
	lo, hi := uint64(pool.Start), uint64(pool.Start)+uint64(pool.Size)
	for _, e := range entries {
		s, t := max(uint64(e.Range.Start), lo), min(e.Range.End(), hi)
		if t > s {
			n += t - s
		}
	}
	return n
}
