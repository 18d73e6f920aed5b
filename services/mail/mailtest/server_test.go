package mailtest_test

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tollgate/tollgate/services/mail/mailtest"
)

func send(t *testing.T, srv *mailtest.Server, to []string, data string) {
	t.Helper()
	if err := sendRaw(srv.Addr(), "sender@example.com", to, data); err != nil {
		t.Fatal(err)
	}
}

// sendRaw delivers data over plaintext (go-smtp's SendMail insists on TLS).
func sendRaw(addr, from string, to []string, data string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(data)); err != nil {
		return err
	}
	return c.Quit()
}

func TestURL(t *testing.T) {
	t.Parallel()
	srv := mailtest.New(t)
	want := "smtp://" + srv.Addr() + "?from=noreply@tollgate.test&insecure=true"
	if got := srv.URL(); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if srv.RootCAs() != nil {
		t.Errorf("plaintext server has a certificate")
	}
	tlsSrv := mailtest.NewWithOptions(t, mailtest.Options{ImplicitTLS: true, Username: "u", Password: "p w"})
	u, err := url.Parse(tlsSrv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if pass, _ := u.User.Password(); u.Scheme != "smtps" || u.User.Username() != "u" || pass != "p w" || u.Query().Has("insecure") {
		t.Errorf("URL = %q", tlsSrv.URL())
	}
}

func TestParsesMessages(t *testing.T) {
	t.Parallel()
	srv := mailtest.New(t)
	for _, tc := range []struct {
		name, data, subject, text, html string
		parts                           int
	}{
		{
			name:    "no content type",
			data:    "Subject: plain\r\n\r\nhello\r\n.dot\r\n",
			subject: "plain", text: "hello\n.dot\n", parts: 1,
		},
		{
			name:    "base64 html only",
			data:    "Subject: =?UTF-8?B?w4Nww6lyYQ==?=\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPHA+aMOpPC9w\r\nPg==\r\n",
			subject: "Ãpéra", html: "<p>hé</p>", parts: 1,
		},
		{
			name: "alternative inside mixed",
			data: "Subject: nested\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n" +
				"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
				"--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nlink: https://x.example/?token=3Dabc&a=3Db caf=C3=A9=\r\n!\r\n" +
				"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<a href=\"https://x.example/\">x</a>\r\n--inner--\r\n" +
				"--outer\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--outer--\r\n",
			subject: "nested", text: "link: https://x.example/?token=abc&a=b café!", html: "<a href=\"https://x.example/\">x</a>", parts: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := strings.ReplaceAll(tc.name, " ", "-") + "@example.com"
			send(t, srv, []string{to}, tc.data)
			r := srv.WaitFor(t, to, 5*time.Second)
			if r.ParseErr != nil {
				t.Fatal(r.ParseErr)
			}
			if r.Subject != tc.subject || r.Text != tc.text || r.HTML != tc.html || len(r.Parts) != tc.parts {
				t.Errorf("got subject %q text %q html %q parts %+v", r.Subject, r.Text, r.HTML, r.Parts)
			}
			if r.From != "sender@example.com" || string(r.Data) != tc.data || r.TLS {
				t.Errorf("envelope from %q, TLS %t, data %q", r.From, r.TLS, r.Data)
			}
		})
	}
}

func TestWaitForHandsOutEachMessageOnce(t *testing.T) {
	t.Parallel()
	srv := mailtest.New(t)
	send(t, srv, []string{"a@example.com", "B@example.com"}, "Subject: one\r\n\r\n1\r\n")
	if r := srv.WaitFor(t, "b@example.com", time.Second); r.Subject != "one" || len(r.To) != 2 {
		t.Errorf("got %q to %v", r.Subject, r.To)
	}
	if r := srv.WaitFor(t, "a@example.com", time.Second); r.Subject != "one" {
		t.Errorf("got %q", r.Subject)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = sendRaw(srv.Addr(), "s@example.com", []string{"a@example.com"}, "Subject: two\r\n\r\n2\r\n")
	}()
	if r := srv.WaitFor(t, "a@example.com", 5*time.Second); r.Subject != "two" {
		t.Errorf("second WaitFor got %q, want the new message", r.Subject)
	}
	if n := len(srv.Messages()); n != 2 {
		t.Errorf("Messages() has %d, want 2", n)
	}

	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { // Fatalf ends a real test's goroutine; here it only records.
		defer close(done)
		srv.WaitFor(ft, "a@example.com", 50*time.Millisecond)
	}()
	<-done
	if !strings.Contains(ft.msg, "no new message to a@example.com") {
		t.Errorf("WaitFor with nothing new: %q", ft.msg)
	}
}

type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msg = fmt.Sprintf(format, args...)
}

func TestRequiresAuthWhenConfigured(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewWithOptions(t, mailtest.Options{Username: "u", Password: "p"})
	err := sendRaw(srv.Addr(), "s@example.com", []string{"a@example.com"}, "Subject: x\r\n\r\nx\r\n")
	if err == nil {
		t.Errorf("accepted mail without AUTH")
	}
}
