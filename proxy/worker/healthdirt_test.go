package worker

import (
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/health"
)

// TestHealthDirt: the reporter is told which tenants to read again: marked
// ones once, every tenant after markAll, and an ejected tenant both at the
// ejection and once it has ended (an ejection ends by time alone).
func TestHealthDirt(t *testing.T) {
	t.Parallel()
	var d healthDirt
	if ids, all := d.take(); len(ids) != 0 || all {
		t.Fatalf("clean: %v %v", ids, all)
	}
	d.mark("a")
	d.mark("b")
	d.mark("a")
	ids, all := d.take()
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a", "b"}) || all {
		t.Fatalf("marked: %v %v", ids, all)
	}
	if ids, _ := d.take(); len(ids) != 0 {
		t.Fatalf("taken twice: %v", ids)
	}
	d.markAll()
	if _, all := d.take(); !all {
		t.Fatal("markAll not taken")
	}
	d.ejected("c", 50*time.Millisecond)
	if ids, _ := d.take(); !slices.Equal(ids, []string{"c"}) {
		t.Fatalf("at the ejection: %v", ids)
	}
	if ids, _ := d.take(); len(ids) != 0 {
		t.Fatalf("during the ejection: %v", ids)
	}
	time.Sleep(50*time.Millisecond + health.DefaultReportPoll + 20*time.Millisecond)
	if ids, _ := d.take(); !slices.Equal(ids, []string{"c"}) {
		t.Fatalf("after the ejection ended: %v", ids)
	}
	if ids, _ := d.take(); len(ids) != 0 {
		t.Fatalf("the ended ejection taken twice: %v", ids)
	}
}
