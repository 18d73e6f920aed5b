package mail_test

import (
	"bufio"
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/services/mail"
)

// smtpServer is a minimal SMTP server on loopback that records one message.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	from string
	rcpt string
	data string
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(l string) { _, _ = c.Write([]byte(l + "\r\n")) }
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 test")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			s.mu.Lock()
			s.from = strings.TrimSpace(line[10:])
			s.mu.Unlock()
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			s.mu.Lock()
			s.rcpt = strings.TrimSpace(line[8:])
			s.mu.Unlock()
			say("250 ok")
		case cmd == "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.data = b.String()
			s.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func TestSMTPDelivers(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t)
	s, err := mail.ParseSMTPURL("smtp://" + srv.ln.Addr().String() + "?from=noreply@tollgate.example&insecure=true")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Réinitialiser", Body: "line one\n.dot line\nhttps://x.example/reset?token=abc"})
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.from != "<noreply@tollgate.example>" || srv.rcpt != "<ada@example.com>" {
		t.Errorf("envelope from %q to %q", srv.from, srv.rcpt)
	}
	for _, want := range []string{"To: ada@example.com\r\n", "Subject: =?utf-8?q?R=C3=A9initialiser?=\r\n", "\r\n..dot line\r\n", "token=abc"} {
		if !strings.Contains(srv.data, want) {
			t.Errorf("message lacks %q:\n%s", want, srv.data)
		}
	}
}

func TestSMTPRefusesPlaintextAndInjection(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t)
	s, err := mail.ParseSMTPURL("smtp://" + srv.ln.Addr().String() + "?from=noreply@tollgate.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), mail.Message{To: "a@example.com", Subject: "x", Body: "x"}); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("plaintext delivery without insecure=true: %v", err)
	}
	s.AllowPlaintext = true
	if err := s.Send(context.Background(), mail.Message{To: "a@example.com\r\nBcc: evil@example.com", Subject: "x"}); err == nil {
		t.Errorf("header injection accepted")
	}
}

func TestParseSMTPURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url, addr string
		tls, err        bool
	}{
		{name: "default port", url: "smtp://mail.example?from=a@b.example", addr: "mail.example:587"},
		{name: "smtps", url: "smtps://u:p@mail.example?from=a@b.example", addr: "mail.example:465", tls: true},
		{name: "no from", url: "smtp://mail.example", err: true},
		{name: "bad scheme", url: "http://mail.example?from=a@b.example", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := mail.ParseSMTPURL(tc.url)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (s.Addr != tc.addr || s.ImplicitTLS != tc.tls) {
				t.Errorf("got %+v", s)
			}
		})
	}
}

func TestSinkKeepsAndShowsMessages(t *testing.T) {
	t.Parallel()
	s := &mail.Sink{Max: 2}
	for _, to := range []string{"a@x.example", "b@x.example", "A@x.example"} {
		_ = s.Send(context.Background(), mail.Message{To: to, Subject: "hi " + to, Body: "<b>body</b>"})
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("kept %d messages, want 2", n)
	}
	if m, ok := s.Last("a@X.example"); !ok || m.Subject != "hi A@x.example" {
		t.Errorf("Last = %+v, %v", m, ok)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/dev/mail", nil))
	if body := rec.Body.String(); !strings.Contains(body, "&lt;b&gt;body&lt;/b&gt;") || strings.Contains(body, "<b>body</b>") {
		t.Errorf("dev mail page does not escape bodies")
	}
}
