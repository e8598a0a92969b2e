package idalloc

import (
	"errors"
	"testing"
)

const B = BlockSize

func ranges(rs ...Range) []Entry {
	out := make([]Entry, len(rs))
	for i, r := range rs {
		out[i] = Entry{Key: string(rune('a' + i)), Range: r}
	}
	return out
}

func TestFirstFit(t *testing.T) {
	t.Parallel()
	pool := Pool{Start: 16 * B, Size: 8 * B}
	tests := []struct {
		name   string
		pool   Pool
		used   []Entry
		size   uint32
		want   uint32
		wantOK bool
	}{
		{name: "empty pool starts at pool start", pool: pool, size: B, want: 16 * B, wantOK: true},
		{name: "whole pool", pool: pool, size: 8 * B, want: 16 * B, wantOK: true},
		{name: "larger than pool", pool: pool, size: 9 * B, wantOK: false},
		{name: "after first", pool: pool, used: ranges(Range{16 * B, B}), size: B, want: 17 * B, wantOK: true},
		{name: "unsorted input", pool: pool, used: ranges(Range{17 * B, B}, Range{16 * B, B}), size: B, want: 18 * B, wantOK: true},
		{name: "hole reused", pool: pool, used: ranges(Range{16 * B, B}, Range{18 * B, B}), size: B, want: 17 * B, wantOK: true},
		{name: "hole too small is skipped", pool: pool, used: ranges(Range{16 * B, B}, Range{18 * B, B}), size: 2 * B, want: 19 * B, wantOK: true},
		{name: "exact fit at the end", pool: pool, used: ranges(Range{16 * B, 6 * B}), size: 2 * B, want: 22 * B, wantOK: true},
		{name: "full", pool: pool, used: ranges(Range{16 * B, 8 * B}), size: B, wantOK: false},
		{name: "one short", pool: pool, used: ranges(Range{16 * B, 7 * B}), size: 2 * B, wantOK: false},
		{name: "entry below pool overlapping its start", pool: pool, used: ranges(Range{14 * B, 3 * B}), size: B, want: 17 * B, wantOK: true},
		{name: "entries outside pool ignored", pool: pool, used: ranges(Range{B, B}, Range{100 * B, B}), size: B, want: 16 * B, wantOK: true},
		{name: "entry straddling pool end", pool: pool, used: ranges(Range{23 * B, 4 * B}), size: 2 * B, want: 16 * B, wantOK: true},
		{name: "straddling entry blocks the tail", pool: pool, used: ranges(Range{16 * B, 6 * B}, Range{23 * B, 4 * B}), size: 2 * B, wantOK: false},
		{name: "misaligned end rounds up", pool: pool, used: ranges(Range{16 * B, B + 1}), size: B, want: 18 * B, wantOK: true},
		{name: "misaligned start blocks the block it touches", pool: pool, used: ranges(Range{16*B + 5, 1}), size: B, want: 17 * B, wantOK: true},
		{name: "top of the id space", pool: Pool{Start: MaxID + 1 - 3*B, Size: 2 * B}, used: ranges(Range{MaxID + 1 - 3*B, B}), size: B, want: MaxID + 1 - 2*B, wantOK: true},
		{name: "top of the id space full", pool: Pool{Start: MaxID + 1 - 3*B, Size: 2 * B}, used: ranges(Range{MaxID + 1 - 3*B, 2 * B}), size: B, wantOK: false},
		{name: "zero size", pool: pool, size: 0, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := firstFit(tt.pool, tt.used, tt.size)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("firstFit(%v, %v, %d) = %d, %v; want %d, %v", tt.pool, tt.used, tt.size, got, ok, tt.want, tt.wantOK)
			}
			if ok {
				r := Range{got, tt.size}
				for _, u := range tt.used {
					if r.Overlaps(u.Range) {
						t.Errorf("result %v overlaps %v", r, u.Range)
					}
				}
			}
		})
	}
}

func TestPoolValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pool Pool
		ok   bool
	}{
		{Pool{Start: B, Size: B}, true},
		{Pool{Start: 1 << 31, Size: 1 << 30}, true},
		{Pool{Start: B, Size: MaxID + 1 - 2*B}, true}, // ends at 0xFFFF0000
		{Pool{Start: 0, Size: B}, false},
		{Pool{Start: B - 1, Size: B}, false},
		{Pool{Start: B, Size: 0}, false},
		{Pool{Start: B + 1, Size: B}, false},
		{Pool{Start: B, Size: B + 1}, false},
		{Pool{Start: B, Size: 100}, false},
		{Pool{Start: MaxID + 1 - B, Size: B}, false}, // would contain 4294967295
		{Pool{Start: B, Size: MaxID + 1 - B}, false},
	}
	for _, tt := range tests {
		err := tt.pool.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%v.Validate() = %v, want ok=%v", tt.pool, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidPool) {
			t.Errorf("%v.Validate() = %v, want ErrInvalidPool", tt.pool, err)
		}
	}
}

func TestRangeOverlaps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b Range
		want bool
	}{
		{Range{0, 10}, Range{10, 10}, false},
		{Range{0, 11}, Range{10, 10}, true},
		{Range{5, 1}, Range{0, 10}, true},
		{Range{MaxID + 1 - B, B}, Range{MaxID - 1, 1}, true},
		{Range{0, 0}, Range{0, 10}, false},
	}
	for _, tt := range tests {
		if got := tt.a.Overlaps(tt.b); got != tt.want {
			t.Errorf("%v.Overlaps(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Overlaps(tt.a); got != tt.want {
			t.Errorf("%v.Overlaps(%v) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}
