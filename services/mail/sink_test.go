package mail_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/mail"
)

func TestSinkKeepsAndShowsMessages(t *testing.T) {
	t.Parallel()
	s := &mail.Sink{Max: 2}
	for _, to := range []string{"a@x.example", "b@x.example", "A@x.example"} {
		_ = s.Send(context.Background(), mail.Message{To: to, Subject: "hi " + to, Body: "<b>body</b>", HTML: `<p onclick="x()">html</p>`, FromName: "Acme <Portal>"})
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("kept %d messages, want 2", n)
	}
	if m, ok := s.Last("a@X.example"); !ok || m.Subject != "hi A@x.example" || m.HTML == "" {
		t.Errorf("Last = %+v, %v", m, ok)
	}
	if err := s.Send(context.Background(), mail.Message{To: "a@x.example\r\nBcc: evil@x.example", Subject: "x"}); !errors.Is(err, mail.ErrHeaderInjection) {
		t.Errorf("sink accepted header injection: %v", err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/dev/mail", nil))
	body := rec.Body.String()
	if !strings.Contains(body, "&lt;b&gt;body&lt;/b&gt;") || strings.Contains(body, "<b>body</b>") {
		t.Errorf("dev mail page does not escape bodies")
	}
	if strings.Contains(body, "<p onclick") || !strings.Contains(body, "<iframe sandbox srcdoc=") {
		t.Errorf("dev mail page does not confine the HTML version to a sandboxed iframe:\n%s", body)
	}
	if strings.Contains(body, "<Portal>") {
		t.Errorf("dev mail page does not escape the sender name")
	}
}
