// Package mail sends the control plane's email (team invitations, password
// resets): over SMTP in production, into an in-memory Sink in dev and tests,
// where the messages can be read by code and at a dev URL.
package mail

import (
	"context"
	"time"
)

// Message is one plain-text email.
type Message struct {
	To      string
	Subject string
	Body    string
	// Sent is set by the sender.
	Sent time.Time
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}
