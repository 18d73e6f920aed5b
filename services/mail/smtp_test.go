package mail_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	netmail "net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/mail/mailtest"
)

// sender is an SMTP sender for srv, configured from its TOLLGATE_SMTP_URL
// and trusting its certificate.
func sender(t *testing.T, srv *mailtest.Server) *mail.SMTP {
	t.Helper()
	s, err := mail.ParseSMTPURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if srv.RootCAs() != nil {
		s.TLSConfig = &tls.Config{RootCAs: srv.RootCAs()}
	}
	s.Timeout = 10 * time.Second
	return s
}

func TestSMTPSendsPlainTextOnly(t *testing.T) {
	t.Parallel()
	srv := mailtest.New(t)
	body := "line one\n.dot line\n..two dots\nhttps://x.example/reset?token=abc=="
	err := sender(t, srv).Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Reset your password", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	r := srv.WaitFor(t, "ada@example.com", 5*time.Second)
	if r.ParseErr != nil {
		t.Fatalf("parse: %v\n%s", r.ParseErr, r.Data)
	}
	if r.From != mailtest.From || len(r.To) != 1 || r.To[0] != "ada@example.com" {
		t.Errorf("envelope from %q to %q", r.From, r.To)
	}
	if len(r.Parts) != 1 || r.Parts[0].ContentType != "text/plain" || r.Parts[0].Charset != "utf-8" {
		t.Errorf("parts = %+v, want one text/plain; charset=utf-8", r.Parts)
	}
	if got := strings.TrimSuffix(r.Text, "\n"); got != body {
		t.Errorf("text part = %q, want %q", got, body)
	}
	if r.HTML != "" {
		t.Errorf("HTML part without Message.HTML: %q", r.HTML)
	}
	if from := r.Header.Get("From"); from != "<noreply@tollgate.test>" && from != "noreply@tollgate.test" {
		t.Errorf("From = %q", from)
	}
	if to := r.Header.Get("To"); to != "<ada@example.com>" {
		t.Errorf("To = %q", to)
	}
	if r.Subject != "Reset your password" {
		t.Errorf("Subject = %q", r.Subject)
	}
	if rt := r.Header.Get("Reply-To"); rt != "" {
		t.Errorf("Reply-To = %q without Message.ReplyTo", rt)
	}
	checkIDAndDate(t, r)
}

func TestSMTPSendsHTMLAlternative(t *testing.T) {
	t.Parallel()
	srv := mailtest.New(t)
	m := mail.Message{
		To:       "Ada Lovelace <ada@example.com>",
		Subject:  "Verify your email",
		Body:     "Open https://acme.developers.example/verify?token=t0k3n to verify.",
		HTML:     `<!doctype html><p style="color:#0a7">Open <a href="https://acme.developers.example/verify?token=t0k3n">this link</a> to verify. Ünïcödé ✓</p>`,
		FromName: `Acme, "the" Développeurs`,
		ReplyTo:  "support@acme.example",
	}
	if err := sender(t, srv).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r := srv.WaitFor(t, "ada@example.com", 5*time.Second)
	if r.ParseErr != nil {
		t.Fatalf("parse: %v\n%s", r.ParseErr, r.Data)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
		t.Errorf("Content-Type = %q, want multipart/alternative", ct)
	}
	if len(r.Parts) != 2 || r.Parts[0].ContentType != "text/plain" || r.Parts[1].ContentType != "text/html" {
		t.Fatalf("parts = %+v, want text/plain then text/html", r.Parts)
	}
	if got := strings.TrimSuffix(r.Text, "\n"); got != m.Body {
		t.Errorf("text part = %q, want %q", got, m.Body)
	}
	if got := strings.TrimSuffix(r.HTML, "\n"); got != m.HTML {
		t.Errorf("html part = %q, want %q", got, m.HTML)
	}
	from, err := netmail.ParseAddress(r.Header.Get("From"))
	if err != nil || from.Name != m.FromName || from.Address != mailtest.From {
		t.Errorf("From = %q (%+v, %v), want %q <%s>", r.Header.Get("From"), from, err, m.FromName, mailtest.From)
	}
	if r.From != mailtest.From {
		t.Errorf("envelope from %q: FromName must not change the sender address", r.From)
	}
	to, err := netmail.ParseAddress(r.Header.Get("To"))
	if err != nil || to.Name != "Ada Lovelace" || to.Address != "ada@example.com" {
		t.Errorf("To = %q", r.Header.Get("To"))
	}
	if rt, err := netmail.ParseAddress(r.Header.Get("Reply-To")); err != nil || rt.Address != m.ReplyTo {
		t.Errorf("Reply-To = %q", r.Header.Get("Reply-To"))
	}
	checkIDAndDate(t, r)
}

func checkIDAndDate(t *testing.T, r mailtest.Received) {
	t.Helper()
	if id := r.Header.Get("Message-ID"); !regexp.MustCompile(`^<[a-z2-7]{32}@tollgate\.test>$`).MatchString(id) {
		t.Errorf("Message-ID = %q", id)
	}
	if d, err := netmail.ParseDate(r.Header.Get("Date")); err != nil || time.Since(d).Abs() > time.Minute {
		t.Errorf("Date = %q (%v)", r.Header.Get("Date"), err)
	}
}

func TestSMTPEncodesSubjects(t *testing.T) {
	t.Parallel()
	srv := mailtest.New(t)
	s := sender(t, srv)
	for _, tc := range []struct {
		name, subject string
	}{
		{name: "ascii", subject: "Verify your email"},
		{name: "latin", subject: "Réinitialiser votre mot de passe"},
		{name: "cjk and emoji", subject: "验证您的电子邮件地址 — Acme 开发者门户 🎉"},
		{name: "long ascii", subject: strings.TrimSpace(strings.Repeat("Approve the subscription of Ada to the Starter plan ", 3))},
		{name: "long non-ascii", subject: strings.TrimSpace(strings.Repeat("Genehmigung für Ümläute und Übersicht ", 5))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := strings.ReplaceAll(tc.name, " ", "-") + "@example.com"
			if err := s.Send(context.Background(), mail.Message{To: to, Subject: tc.subject, Body: "x"}); err != nil {
				t.Fatal(err)
			}
			r := srv.WaitFor(t, to, 5*time.Second)
			if r.Subject != tc.subject {
				t.Errorf("Subject = %q, want %q", r.Subject, tc.subject)
			}
			raw := r.Header.Get("Subject")
			for _, c := range raw {
				if c > 0x7e {
					t.Errorf("raw Subject %q is not ASCII (RFC 2047 encoding missing)", raw)
					break
				}
			}
			header, _, _ := strings.Cut(string(r.Data), "\r\n\r\n")
			for line := range strings.SplitSeq(header, "\r\n") {
				if len(line) > 78 {
					t.Errorf("header line of %d characters, not folded: %q", len(line), line)
				}
			}
		})
	}
}

func TestSMTPRefusesHeaderInjection(t *testing.T) {
	t.Parallel()
	srv := mailtest.New(t)
	s := sender(t, srv)
	ok := mail.Message{To: "a@example.com", Subject: "Hello", Body: "x"}
	for _, tc := range []struct {
		name      string
		edit      func(*mail.Message)
		injection bool // refused as header injection (else as a bad address)
	}{
		{name: "CRLF in To", edit: func(m *mail.Message) { m.To = "a@example.com\r\nBcc: evil@example.com" }, injection: true},
		{name: "LF in To", edit: func(m *mail.Message) { m.To = "a@example.com\nBcc: evil@example.com" }, injection: true},
		{name: "CRLF in Subject", edit: func(m *mail.Message) { m.Subject = "Hello\r\nBcc: evil@example.com" }, injection: true},
		{name: "bare CR in Subject", edit: func(m *mail.Message) { m.Subject = "Hello\rBcc: evil@example.com" }, injection: true},
		{name: "NUL in Subject", edit: func(m *mail.Message) { m.Subject = "Hello\x00" }, injection: true},
		{name: "LF in FromName", edit: func(m *mail.Message) { m.FromName = "Acme\nBcc: evil@example.com" }, injection: true},
		{name: "CRLF in ReplyTo", edit: func(m *mail.Message) { m.ReplyTo = "s@example.com\r\nBcc: evil@example.com" }, injection: true},
		{name: "address list in To", edit: func(m *mail.Message) { m.To = "a@example.com, evil@example.com" }},
		{name: "not an address", edit: func(m *mail.Message) { m.To = "not an address" }},
		{name: "bad ReplyTo", edit: func(m *mail.Message) { m.ReplyTo = "nobody" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			tc.edit(&m)
			err := s.Send(context.Background(), m)
			if err == nil {
				t.Fatal("sent")
			}
			if errors.Is(err, mail.ErrHeaderInjection) != tc.injection {
				t.Errorf("err = %v, want ErrHeaderInjection: %t", err, tc.injection)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

func TestSMTPRequiresSTARTTLSUnlessInsecure(t *testing.T) {
	t.Parallel()
	plain := mailtest.New(t)
	starttls := mailtest.NewWithOptions(t, mailtest.Options{STARTTLS: true})
	for _, tc := range []struct {
		name     string
		srv      *mailtest.Server
		insecure bool
		trust    bool
		wantErr  string // "" means delivered
		wantTLS  bool
	}{
		{name: "plaintext server refused by default", srv: plain, wantErr: "STARTTLS"},
		{name: "plaintext server with insecure=true", srv: plain, insecure: true},
		{name: "STARTTLS server", srv: starttls, trust: true, wantTLS: true},
		{name: "STARTTLS server with insecure=true still upgrades", srv: starttls, insecure: true, trust: true, wantTLS: true},
		{name: "STARTTLS server with an untrusted certificate", srv: starttls, wantErr: "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sender(t, tc.srv)
			s.AllowPlaintext = tc.insecure
			if !tc.trust {
				s.TLSConfig = nil
			}
			to := strings.ReplaceAll(tc.name, " ", "-") + "@example.com"
			err := s.Send(context.Background(), mail.Message{To: to, Subject: "x", Body: "x"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one about %s", err, tc.wantErr)
				}
				for _, r := range tc.srv.Messages() {
					if r.To[0] == to {
						t.Errorf("delivered anyway")
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := tc.srv.WaitFor(t, to, 5*time.Second); r.TLS != tc.wantTLS {
				t.Errorf("TLS = %t, want %t", r.TLS, tc.wantTLS)
			}
		})
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewWithOptions(t, mailtest.Options{ImplicitTLS: true, Username: "relay", Password: "p@ss:w/rd"})
	s := sender(t, srv)
	if !s.ImplicitTLS || s.AllowPlaintext {
		t.Fatalf("URL %s parsed as %v", srv.URL(), s)
	}
	if err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "x", Body: "x", HTML: "<p>x</p>"}); err != nil {
		t.Fatal(err)
	}
	if r := srv.WaitFor(t, "ada@example.com", 5*time.Second); !r.TLS || r.Username != "relay" || r.HTML != "<p>x</p>" {
		t.Errorf("TLS %t, user %q, html %q", r.TLS, r.Username, r.HTML)
	}
}

func TestSMTPAuthenticates(t *testing.T) {
	t.Parallel()
	const user, pass = "mailer", "s3cret-p@ss"
	tlsSrv := mailtest.NewWithOptions(t, mailtest.Options{STARTTLS: true, Username: user, Password: pass})
	plainSrv := mailtest.NewWithOptions(t, mailtest.Options{Username: user, Password: pass})
	for _, tc := range []struct {
		name     string
		srv      *mailtest.Server
		password string
		ok       bool
	}{
		{name: "over STARTTLS", srv: tlsSrv, password: pass, ok: true},
		{name: "wrong password", srv: tlsSrv, password: "wrong-pass-123"},
		{name: "over plaintext with insecure=true", srv: plainSrv, password: pass, ok: true},
		{name: "no credentials", srv: tlsSrv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sender(t, tc.srv)
			s.Password = tc.password
			if tc.password == "" {
				s.Username = ""
			}
			to := strings.ReplaceAll(tc.name, " ", "-") + "@example.com"
			err := s.Send(context.Background(), mail.Message{To: to, Subject: "x", Body: "x"})
			if !tc.ok {
				if err == nil {
					t.Fatal("delivered")
				}
				if tc.password != "" && strings.Contains(err.Error(), tc.password) {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := tc.srv.WaitFor(t, to, 5*time.Second); r.Username != user {
				t.Errorf("authenticated as %q", r.Username)
			}
		})
	}
}

func TestSMTPFailsWithinTimeout(t *testing.T) {
	t.Parallel()
	// A port where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	// A server that accepts and never says a word.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()

	for _, tc := range []struct {
		name    string
		addr    string
		timeout time.Duration
		cancel  time.Duration // cancel the context after this long, if set
		within  time.Duration
		is      error
	}{
		{name: "server down", addr: down, timeout: 5 * time.Second, within: 3 * time.Second},
		{name: "silent server times out", addr: silent.Addr().String(), timeout: 300 * time.Millisecond, within: 3 * time.Second, is: context.DeadlineExceeded},
		{name: "silent server, context cancelled", addr: silent.Addr().String(), timeout: time.Minute, cancel: 200 * time.Millisecond, within: 3 * time.Second, is: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &mail.SMTP{Addr: tc.addr, From: mailtest.From, AllowPlaintext: true, Timeout: tc.timeout}
			ctx := context.Background()
			if tc.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				time.AfterFunc(tc.cancel, cancel)
			}
			start := time.Now()
			err := s.Send(ctx, mail.Message{To: "a@example.com", Subject: "x", Body: "x"})
			if err == nil {
				t.Fatal("no error")
			}
			if d := time.Since(start); d > tc.within {
				t.Errorf("failed after %v, want within %v", d, tc.within)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
		})
	}
}

func TestParseSMTPURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url, addr, user, pass string
		tls, insecure, err          bool
	}{
		{name: "default port", url: "smtp://mail.example?from=a@b.example", addr: "mail.example:587"},
		{name: "smtps", url: "smtps://u:p@mail.example?from=a@b.example", addr: "mail.example:465", tls: true, user: "u", pass: "p"},
		{name: "escaped credentials", url: "smtp://u%40x:p%3Aw%2Fd@mail.example:2525?from=a@b.example&insecure=true", addr: "mail.example:2525", user: "u@x", pass: "p:w/d", insecure: true},
		{name: "from with a name", url: "smtp://mail.example?from=Tollgate%20%3Cnoreply@b.example%3E", addr: "mail.example:587"},
		{name: "no from", url: "smtp://mail.example", err: true},
		{name: "from not an address", url: "smtp://mail.example?from=nobody", err: true},
		{name: "bad scheme", url: "http://mail.example?from=a@b.example", err: true},
		{name: "no host", url: "smtp://?from=a@b.example", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := mail.ParseSMTPURL(tc.url)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (s.Addr != tc.addr || s.ImplicitTLS != tc.tls || s.AllowPlaintext != tc.insecure || s.Username != tc.user || s.Password != tc.pass) {
				t.Errorf("got %+v", *s)
			}
		})
	}
}

func TestSMTPNeverShowsThePassword(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-secret"
	_, err := mail.ParseSMTPURL("smtp://user:" + secret + "@mail.example:notaport?from=a@b.example")
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("parse error %v shows the password", err)
	}
	s, err := mail.ParseSMTPURL("smtp://user:" + secret + "@mail.example?from=a@b.example")
	if err != nil {
		t.Fatal(err)
	}
	if str := s.String(); strings.Contains(str, secret) || !strings.Contains(str, "user:***@") {
		t.Errorf("String() = %q", str)
	}
}
