package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// SMTP sends messages through an SMTP server with net/smtp: STARTTLS when the
// server offers it (required unless the URL says otherwise), PLAIN auth when
// the URL carries credentials.
type SMTP struct {
	// Addr is host:port.
	Addr string
	// From is the envelope and header sender.
	From string
	// Username and Password authenticate with PLAIN auth when Username is set.
	Username, Password string
	// ImplicitTLS dials TLS directly (smtps://, usually port 465).
	ImplicitTLS bool
	// AllowPlaintext sends without STARTTLS when the server does not offer it
	// (a local relay or a test server).
	AllowPlaintext bool
	// Timeout bounds one delivery. If zero, 30s.
	Timeout time.Duration
}

// ParseSMTPURL reads TOLLGATE_SMTP_URL:
// smtp://user:pass@host:587?from=noreply@example.com[&insecure=true]
// (or smtps:// for implicit TLS). insecure=true allows delivery without TLS.
func ParseSMTPURL(raw string) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse SMTP URL: %w", err)
	}
	s := &SMTP{Addr: u.Host, From: u.Query().Get("from")}
	switch u.Scheme {
	case "smtp":
		if u.Port() == "" {
			s.Addr = net.JoinHostPort(u.Hostname(), "587")
		}
	case "smtps":
		s.ImplicitTLS = true
		if u.Port() == "" {
			s.Addr = net.JoinHostPort(u.Hostname(), "465")
		}
	default:
		return nil, fmt.Errorf("SMTP URL: scheme must be smtp or smtps, not %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("SMTP URL: host is missing")
	}
	if s.From == "" {
		return nil, errors.New("SMTP URL: the from= parameter (sender address) is missing")
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	s.AllowPlaintext = u.Query().Get("insecure") == "true"
	return s, nil
}

// Send delivers m.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(m.Subject, "\r\n") {
		return errors.New("send mail: header injection refused")
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	d := net.Dialer{}
	var conn net.Conn
	if s.ImplicitTLS {
		td := tls.Dialer{NetDialer: &d, Config: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}}
		conn, err = td.DialContext(ctx, "tcp", s.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", s.Addr)
	}
	if err != nil {
		return fmt.Errorf("send mail: dial: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	defer c.Close()
	if !s.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
				return fmt.Errorf("send mail: starttls: %w", err)
			}
		} else if !s.AllowPlaintext {
			return errors.New("send mail: server does not offer STARTTLS (add insecure=true to the SMTP URL to allow plaintext)")
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("send mail: auth: %w", err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("send mail: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("send mail: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("send mail: DATA: %w", err)
	}
	if _, err := w.Write(format(s.From, m, time.Now())); err != nil {
		return fmt.Errorf("send mail: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return c.Quit()
}

// format renders m as an RFC 5322 message with CRLF line ends.
func format(from string, m Message, now time.Time) []byte {
	var b strings.Builder
	b.WriteString("From: " + from + "\r\n")
	b.WriteString("To: " + m.To + "\r\n")
	b.WriteString("Subject: " + mime.QEncoding.Encode("utf-8", m.Subject) + "\r\n")
	b.WriteString("Date: " + now.Format(time.RFC1123Z) + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	// Lines starting with "." are dot-stuffed by net/smtp's DATA writer.
	body := strings.ReplaceAll(m.Body, "\r\n", "\n")
	for _, line := range strings.Split(body, "\n") {
		b.WriteString(line + "\r\n")
	}
	return []byte(b.String())
}
