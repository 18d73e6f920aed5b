// Package mail sends the control plane's email (team invitations, password
// resets, developer verification and approvals): over SMTP in production,
// into an in-memory Sink in dev and tests, where the messages can be read by
// code and at a dev URL. Package mailtest runs a real SMTP server for tests.
package mail

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Message is one email: always a plain-text body, optionally an HTML
// alternative of the same content.
type Message struct {
	// To is the recipient's address ("ada@example.com" or
	// "Ada Lovelace <ada@example.com>").
	To string
	// Subject may hold any Unicode text; SMTP encodes it (RFC 2047).
	Subject string
	// Body is the text/plain part. It is always sent, also when HTML is set,
	// so every mail reads well in a text-only client.
	Body string
	// HTML, if set, is sent as a text/html alternative after Body
	// (multipart/alternative). It must say what Body says.
	HTML string
	// FromName, if set, is the sender's display name (for example a tenant
	// portal's display name). The address stays the configured sender, so
	// that SPF, DKIM and DMARC keep working.
	FromName string
	// ReplyTo, if set, is the Reply-To address (for example a tenant's
	// support address).
	ReplyTo string
	// Sent is set by the sender.
	Sent time.Time
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrHeaderInjection is returned by SMTP.Send and Sink.Send for a message
// whose To, Subject, FromName or ReplyTo holds a line break or NUL, which
// could add headers or recipients of an attacker's choosing.
var ErrHeaderInjection = errors.New("header injection refused: a header field holds a line break")

// checkHeaders refuses header fields that could break out of their line.
func (m Message) checkHeaders() error {
	for _, v := range []string{m.To, m.Subject, m.FromName, m.ReplyTo} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return ErrHeaderInjection
		}
	}
	return nil
}
