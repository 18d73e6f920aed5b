// Package mailtest runs a real SMTP server (github.com/emersion/go-smtp) on
// loopback for tests, and records every message it receives, parsed, so a
// test can read a verification link the way a person would.
//
//	srv := mailtest.New(t)
//	cfg.SMTPURL = srv.URL() // smtp://127.0.0.1:PORT?from=noreply@tollgate.test&insecure=true
//	... sign up ...
//	msg := srv.WaitFor(t, "ada@example.com", 10*time.Second)
//	link := regexp.MustCompile(`https?://\S+token=\S+`).FindString(msg.Text)
package mailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// From is the sender address in the URL that Server.URL returns.
const From = "noreply@tollgate.test"

// Options choose what the server demands of its clients. The zero value is
// what New starts: plaintext, no STARTTLS, no authentication.
type Options struct {
	// STARTTLS offers STARTTLS with a fresh self-signed certificate for
	// 127.0.0.1 and localhost; clients trust it through Server.RootCAs.
	STARTTLS bool
	// ImplicitTLS speaks TLS from the first byte (smtps://), with the same
	// kind of certificate.
	ImplicitTLS bool
	// Username and Password, when Username is set, make the server offer
	// AUTH PLAIN and refuse MAIL FROM until a client authenticates with them.
	Username, Password string
}

// Received is one message as the server got it.
type Received struct {
	// From is the envelope sender (MAIL FROM), To the envelope recipients
	// (RCPT TO), as bare addresses.
	From string
	To   []string
	// Username is who the client authenticated as ("" without AUTH).
	Username string
	// TLS reports whether the message came over TLS (STARTTLS or implicit).
	TLS bool
	// Data is the message as transmitted (CRLF line ends, dot-unstuffed).
	Data []byte

	// The parsed view of Data. ParseErr is set, and the fields below may be
	// partly empty, when Data is not a well-formed MIME message.
	ParseErr error
	// Header is the top-level header. Its values are raw (RFC 2047 encoded):
	// use Subject, and Header.AddressList for From, To and Reply-To.
	Header mail.Header
	// Subject is the decoded Subject header.
	Subject string
	// Parts are the leaf parts in transmission order. A single-part message
	// has one.
	Parts []Part
	// Text and HTML are the bodies of the first text/plain and text/html
	// parts, "" when there is none. Like Part.Body they are decoded.
	Text, HTML string
}

// Part is one leaf MIME part.
type Part struct {
	// ContentType is the media type without parameters ("text/plain").
	ContentType string
	// Charset is the charset parameter, lower case ("utf-8"), "" if absent.
	Charset string
	// Body is the content, its transfer encoding (quoted-printable,
	// base64) undone and CRLF line ends turned into "\n". Bytes are kept as
	// sent: tollgate sends UTF-8.
	Body string
}

// Server is a running SMTP server. It is safe for concurrent use.
type Server struct {
	opts  Options
	srv   *smtp.Server
	addr  string
	roots *x509.CertPool

	mu        sync.Mutex
	msgs      []Received
	handedOut map[handout]bool // what WaitFor returned, per recipient
	arrived   chan struct{}    // closed and replaced on every message
	closed    bool
}

// New starts a plaintext server on 127.0.0.1 and closes it when the test
// ends. Its URL has insecure=true, since it offers no STARTTLS.
func New(t testing.TB) *Server {
	t.Helper()
	return NewWithOptions(t, Options{})
}

// NewWithOptions starts a server that demands what o says, on 127.0.0.1, and
// closes it when the test ends.
func NewWithOptions(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{opts: o, arrived: make(chan struct{}), handedOut: map[handout]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "mailtest.localhost"
	srv.AllowInsecureAuth = true // the test decides; the client must refuse plaintext on its own
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = &testLogger{s: s, t: t}
	s.srv = srv

	var (
		ln  net.Listener
		err error
	)
	if o.STARTTLS || o.ImplicitTLS {
		var cert tls.Certificate
		cert, s.roots, err = selfSigned()
		if err != nil {
			t.Fatalf("mailtest: certificate: %v", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if o.ImplicitTLS {
		// go-smtp offers STARTTLS only on connections that are not TLS yet.
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// URL is a TOLLGATE_SMTP_URL for this server, with From as sender:
// smtp://127.0.0.1:PORT?from=noreply@tollgate.test&insecure=true for New.
// It carries the credentials of Options, smtps:// for ImplicitTLS, and
// insecure=true only when the server offers no TLS at all.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr}
	if s.opts.ImplicitTLS {
		u.Scheme = "smtps"
	}
	if s.opts.Username != "" {
		u.User = url.UserPassword(s.opts.Username, s.opts.Password)
	}
	q := "from=" + From
	if !s.opts.STARTTLS && !s.opts.ImplicitTLS {
		q += "&insecure=true"
	}
	u.RawQuery = q
	return u.String()
}

// RootCAs holds the certificate of a TLS server (nil for a plaintext one).
// A client trusts the server with tls.Config{RootCAs: srv.RootCAs()}.
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// Messages returns every message received so far, oldest first.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// WaitFor returns the oldest message addressed (RCPT TO, case-insensitive)
// to the address that no earlier WaitFor for that address returned, waiting
// up to timeout for it to arrive. So a test that expects two mails to one
// address calls WaitFor twice. It fails the test on timeout.
func (s *Server) WaitFor(t testing.TB, to string, timeout time.Duration) Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for i, m := range s.msgs {
			h := handout{msg: i, to: strings.ToLower(to)}
			if !s.handedOut[h] && slices.ContainsFunc(m.To, func(r string) bool { return strings.EqualFold(r, to) }) {
				s.handedOut[h] = true
				s.mu.Unlock()
				return m
			}
		}
		arrived := s.arrived
		var seen []string
		for _, m := range s.msgs {
			seen = append(seen, m.To...)
		}
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("mailtest: no new message to %s within %v (recipients so far: %v)", to, timeout, seen)
			return Received{}
		}
	}
}

// Close stops the server and drops its connections. New arranges it at the
// end of the test; calling it twice is harmless.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if err := s.srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) record(m Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// handout is a message (index in msgs) that WaitFor returned for a recipient.
type handout struct {
	msg int
	to  string
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{srv: s, tls: isTLS}, nil
}

// session is one SMTP session; go-smtp makes a new one after STARTTLS.
type session struct {
	srv  *Server
	tls  bool
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.srv.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.srv.opts.Username == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if (identity != "" && identity != username) || username != ss.srv.opts.Username || password != ss.srv.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.srv.opts.Username != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := parse(data)
	m.From, m.To, m.Username, m.TLS = ss.from, slices.Clone(ss.to), ss.user, ss.tls
	ss.srv.record(m)
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// testLogger sends go-smtp's error log to the test's log while the test runs.
type testLogger struct {
	s *Server
	t testing.TB
}

func (l *testLogger) Printf(format string, v ...any) { l.log(fmt.Sprintf(format, v...)) }
func (l *testLogger) Println(v ...any)               { l.log(fmt.Sprintln(v...)) }

func (l *testLogger) log(msg string) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if !l.s.closed { // t.Log after the test ends panics
		l.t.Logf("mailtest: %s", strings.TrimSpace(msg))
	}
}

// selfSigned makes a certificate for 127.0.0.1, ::1 and localhost, and a
// pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailtest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
