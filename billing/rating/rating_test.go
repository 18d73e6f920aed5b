package rating

import (
	"errors"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/services/catalog"
)

func TestRate(t *testing.T) {
	t.Parallel()
	usd := func(amount int64, perRequest string, included int64) catalog.Price {
		return catalog.Price{AmountCents: amount, Currency: "usd", Interval: "month", PerRequestDecimal: perRequest,
			IncludedRequests: included}
	}
	type line struct {
		kind   string
		qty    int64
		exact  string
		amount int64
	}
	tests := []struct {
		name   string
		price  catalog.Price
		served int64
		lines  []line
		total  int64
	}{
		{name: "free plan", price: catalog.Price{}, served: 1234, lines: nil, total: 0},
		{name: "flat only", price: usd(1900, "", 0), served: 12345,
			lines: []line{{LineFlat, 1, "1900", 1900}}, total: 1900},
		{name: "flat only zero usage", price: usd(1900, "", 0), served: 0,
			lines: []line{{LineFlat, 1, "1900", 1900}}, total: 1900},
		// Stripe's own example: 0.05 × 30 = 1.5, rounded up to 2.
		{name: "per request, half rounds up", price: usd(0, "0.05", 0), served: 30,
			lines: []line{{LineRequests, 30, "1.5", 2}}, total: 2},
		{name: "per request, below half rounds down", price: usd(0, "0.05", 0), served: 29,
			lines: []line{{LineRequests, 29, "1.45", 1}}, total: 1},
		{name: "per request zero usage", price: usd(0, "0.05", 0), served: 0,
			lines: []line{{LineRequests, 0, "0", 0}}, total: 0},
		{name: "inside the included tier", price: usd(0, "0.05", 1000), served: 500,
			lines: []line{{LineIncluded, 500, "0", 0}, {LineRequests, 0, "0", 0}}, total: 0},
		{name: "exactly the included tier", price: usd(0, "0.05", 1000), served: 1000,
			lines: []line{{LineIncluded, 1000, "0", 0}, {LineRequests, 0, "0", 0}}, total: 0},
		{name: "past the included tier", price: usd(0, "0.05", 1000), served: 1030,
			lines: []line{{LineIncluded, 1000, "0", 0}, {LineRequests, 30, "1.5", 2}}, total: 2},
		{name: "flat and per request", price: usd(1900, "0.05", 1000), served: 10_000,
			lines: []line{{LineFlat, 1, "1900", 1900}, {LineIncluded, 1000, "0", 0}, {LineRequests, 9000, "450", 450}},
			total: 2350},
		{name: "flat and per request, zero usage", price: usd(1900, "0.05", 1000), served: 0,
			lines: []line{{LineFlat, 1, "1900", 1900}, {LineIncluded, 0, "0", 0}, {LineRequests, 0, "0", 0}}, total: 1900},
		{name: "twelve decimals", price: usd(0, "0.000000000001", 0), served: 1_000_000_000,
			lines: []line{{LineRequests, 1_000_000_000, "0.001", 0}}, total: 0},
		{name: "thirds stay exact", price: usd(0, "0.333333333333", 0), served: 3,
			lines: []line{{LineRequests, 3, "0.999999999999", 1}}, total: 1},
		{name: "exact half of a cent", price: usd(0, "0.125", 0), served: 4,
			lines: []line{{LineRequests, 4, "0.5", 1}}, total: 1},
		{name: "a quarter rounds down", price: usd(0, "0.25", 0), served: 1,
			lines: []line{{LineRequests, 1, "0.25", 0}}, total: 0},
		{name: "large volume", price: usd(0, "0.0004", 0), served: 123_456_789_012,
			lines: []line{{LineRequests, 123_456_789_012, "49382715.6048", 49_382_716}}, total: 49_382_716},
		{name: "whole minor units per request", price: usd(0, "3", 10), served: 15,
			lines: []line{{LineIncluded, 10, "0", 0}, {LineRequests, 5, "15", 15}}, total: 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Rate(tc.price, tc.served)
			if err != nil {
				t.Fatal(err)
			}
			var got []line
			for _, l := range q.Lines {
				got = append(got, line{l.Kind, l.Quantity, l.ExactAmount, l.Amount})
			}
			if !slices.Equal(got, tc.lines) {
				t.Errorf("lines = %+v, want %+v", got, tc.lines)
			}
			if q.Total != tc.total {
				t.Errorf("total = %d, want %d", q.Total, tc.total)
			}
			if q.Served != tc.served || q.Currency != tc.price.Currency {
				t.Errorf("served %d currency %q, want %d %q", q.Served, q.Currency, tc.served, tc.price.Currency)
			}
		})
	}
}

func TestRateRefusesNegativeUsage(t *testing.T) {
	t.Parallel()
	if _, err := Rate(catalog.Price{Currency: "usd", PerRequestDecimal: "1"}, -1); !errors.Is(err, ErrNegativeUsage) {
		t.Fatalf("err = %v, want ErrNegativeUsage", err)
	}
}

func TestTiers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		price catalog.Price
		want  []Tier
	}{
		{name: "flat only", price: catalog.Price{AmountCents: 100, Currency: "usd"}, want: nil},
		{name: "zero per request is none", price: catalog.Price{Currency: "usd", PerRequestDecimal: "0"}, want: nil},
		{name: "per request", price: catalog.Price{Currency: "usd", PerRequestDecimal: "0.050"},
			want: []Tier{{0, "0.05"}}},
		{name: "with included", price: catalog.Price{Currency: "usd", PerRequestDecimal: "2", IncludedRequests: 500},
			want: []Tier{{500, "0"}, {0, "2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Tiers(tc.price); !slices.Equal(got, tc.want) {
				t.Errorf("Tiers = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBillable(t *testing.T) {
	t.Parallel()
	for class, want := range map[int]bool{0: false, 1: true, 2: true, 3: true, 4: false, 5: false, 6: false} {
		if Billable(class) != want {
			t.Errorf("Billable(%d) = %v", class, !want)
		}
	}
	for _, c := range BillableClasses() {
		if !Billable(int(c)) {
			t.Errorf("BillableClasses has %d", c)
		}
	}
}
