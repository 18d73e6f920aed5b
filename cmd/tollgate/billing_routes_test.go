package main

import (
	"slices"
	"testing"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/services/mgmtapi"
)

// TestBillingRoutesDocumented: the /v1 routes billing serves are the ones
// the /v1 OpenAPI document lists as served elsewhere.
func TestBillingRoutesDocumented(t *testing.T) {
	var got []string
	for _, rt := range (&billing.API{}).Routes() {
		got = append(got, rt.Pattern)
	}
	want := slices.Clone(mgmtapi.ExternalRoutes)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("billing serves %v, the document lists %v", got, want)
	}
}
