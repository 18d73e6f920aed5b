package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTP sends messages through an SMTP server with github.com/wneessen/go-mail,
// one connection per message. Transport security is mandatory by default:
// STARTTLS for smtp:// (the server must offer it), TLS from the first byte for
// smtps://. Credentials, when set, are sent only over that secured connection
// unless AllowPlaintext says otherwise.
type SMTP struct {
	// Addr is host:port.
	Addr string
	// From is the envelope and header sender: an address, optionally with a
	// display name ("Tollgate <noreply@example.com>"). Message.FromName
	// replaces the display name, never the address.
	From string
	// Username and Password authenticate (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN or
	// LOGIN, whichever the server offers first in that order) when Username
	// is set. They never appear in errors or logs.
	Username, Password string
	// ImplicitTLS dials TLS directly (smtps://, usually port 465).
	ImplicitTLS bool
	// AllowPlaintext sends without TLS when the server does not offer
	// STARTTLS (a local relay or a test server); STARTTLS is still used when
	// offered. Credentials then travel in the clear.
	AllowPlaintext bool
	// Timeout bounds one delivery, from dial to QUIT. If zero, 30s. A
	// context deadline that comes sooner wins.
	Timeout time.Duration
	// TLSConfig is used for STARTTLS and implicit TLS. If nil, the system's
	// roots verify the server's certificate for the host of Addr, TLS 1.2 or
	// newer. An empty ServerName is filled in from Addr.
	TLSConfig *tls.Config
}

// ParseSMTPURL reads TOLLGATE_SMTP_URL:
// smtp://user:pass@host:587?from=noreply@example.com[&insecure=true]
// (or smtps:// for implicit TLS, default port 465). insecure=true allows
// delivery without TLS. Errors never repeat the URL, which holds the password.
func ParseSMTPURL(raw string) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
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
	if _, err := netmail.ParseAddress(s.From); err != nil {
		return nil, fmt.Errorf("SMTP URL: the from= parameter is not an email address: %w", err)
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	s.AllowPlaintext = u.Query().Get("insecure") == "true"
	return s, nil
}

// String describes s without its password, so that printing the sender (or
// a struct holding it) never leaks the credential.
func (s *SMTP) String() string {
	user := ""
	if s.Username != "" {
		user = s.Username + ":***@"
	}
	scheme := "smtp"
	if s.ImplicitTLS {
		scheme = "smtps"
	}
	return fmt.Sprintf("%s://%s%s?from=%s&insecure=%t", scheme, user, s.Addr, s.From, s.AllowPlaintext)
}

// Send delivers m: text/plain only, or multipart/alternative (text/plain,
// then text/html) when m.HTML is set, with Date and Message-ID. A To,
// Subject, FromName or ReplyTo holding a line break is refused with
// ErrHeaderInjection before any connection is made. Cancelling ctx aborts
// the delivery at once, whatever command is in flight.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if err := m.checkHeaders(); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	msg, err := s.compose(m, time.Now())
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// go-mail bounds each command by its own timeout and checks the context
	// only while dialling, and it leaves the connection open when the
	// greeting, STARTTLS or AUTH fails. So the connection is ours: it is
	// closed when ctx ends (go-mail's timeout is set a little later, as a
	// backstop, so that the error says why) and, in any case, when Send
	// returns.
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), 0) + time.Second
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	tlsConf := s.tlsConfig()
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { _ = raw.Close() })
		mu.Lock()
		conns = append(conns, raw)
		mu.Unlock()
		if !s.ImplicitTLS {
			return raw, nil
		}
		tc := tls.Client(raw, tlsConf)
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return tc, nil
	}

	c, err := s.client(dial, tlsConf, timeout)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("send mail: %w", errors.Join(cause, err))
		}
		if !s.ImplicitTLS && !s.AllowPlaintext && strings.Contains(err.Error(), "does not support STARTTLS") {
			return fmt.Errorf("send mail: %w (add insecure=true to the SMTP URL to allow plaintext)", err)
		}
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}

// client configures one go-mail client for one delivery.
func (s *SMTP) client(dial gomail.DialContextFunc, tlsConf *tls.Config, timeout time.Duration) (*gomail.Client, error) {
	host, portStr, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return nil, fmt.Errorf("server address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("server address: bad port %q", portStr)
	}
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(tlsConf),
		gomail.WithDialContextFunc(dial),
	}
	switch {
	case s.ImplicitTLS:
		// dial already speaks TLS; STARTTLS on top of it makes no sense.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case s.AllowPlaintext:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.Username != "" {
		// The -NOENC variants only skip go-mail's own "is this connection
		// encrypted" check, which cannot see TLS done by our dialer; the
		// policy above already guarantees TLS unless AllowPlaintext is set.
		opts = append(opts,
			gomail.WithUsername(s.Username),
			gomail.WithPassword(s.Password),
			gomail.WithOpportunisticSMTPAuth(
				gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
				gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc,
			),
		)
	}
	return gomail.NewClient(host, opts...)
}

// tlsConfig is s.TLSConfig (or a default one) with ServerName set.
func (s *SMTP) tlsConfig() *tls.Config {
	var c *tls.Config
	if s.TLSConfig != nil {
		c = s.TLSConfig.Clone()
	} else {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(s.Addr)
	}
	return c
}

// compose builds the MIME message for m.
func (s *SMTP) compose(m Message, now time.Time) (*gomail.Msg, error) {
	from, err := netmail.ParseAddress(s.From)
	if err != nil {
		return nil, fmt.Errorf("sender address: %w", err)
	}
	if m.FromName != "" {
		from.Name = m.FromName
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	if m.ReplyTo != "" {
		if err := msg.ReplyTo(m.ReplyTo); err != nil {
			return nil, fmt.Errorf("reply-to: %w", err)
		}
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	id, err := messageID(from.Address)
	if err != nil {
		return nil, err
	}
	msg.SetMessageIDWithValue(id)
	// Tells auto-responders (vacation replies) to stay quiet (RFC 3834).
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// messageID is a random Message-ID in the sender's domain (not the host's
// name, which says nothing to the recipient and may be internal).
func messageID(fromAddr string) (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("message id: %w", err)
	}
	domain := fromAddr[strings.LastIndexByte(fromAddr, '@')+1:]
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)) + "@" + domain, nil
}
