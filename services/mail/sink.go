package mail

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Sink keeps sent messages in memory, for dev mode and tests. It holds at
// most Max messages (oldest dropped); zero means 200.
type Sink struct {
	Max int

	mu   sync.Mutex
	msgs []Message
}

// Send stores m. Like SMTP.Send it refuses header injection, so that dev
// and tests fail where production would.
func (s *Sink) Send(_ context.Context, m Message) error {
	if err := m.checkHeaders(); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	m.Sent = time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.Max
	if limit <= 0 {
		limit = 200
	}
	s.msgs = append(s.msgs, m)
	if len(s.msgs) > limit {
		s.msgs = slices.Delete(s.msgs, 0, len(s.msgs)-limit)
	}
	return nil
}

// Messages returns the stored messages, oldest first.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// Last returns the newest message to the address (case-insensitive).
func (s *Sink) Last(to string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.msgs) - 1; i >= 0; i-- {
		if strings.EqualFold(s.msgs[i].To, to) {
			return s.msgs[i], true
		}
	}
	return Message{}, false
}

var sinkPage = template.Must(template.New("sink").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dev mail sink</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2937}
article{border:1px solid #e5e7eb;border-radius:8px;padding:1rem;margin:1rem 0}pre{white-space:pre-wrap}
h2{font-size:1rem;margin:0}small{color:#6b7280}</style></head><body>
<h1>Dev mail sink</h1><p>Every email the control plane sent in this process, newest first. Nothing leaves the machine.</p>
{{range .}}<article><h2>{{.Subject}}</h2><small>{{with .FromName}}From {{.}} · {{end}}To {{.To}}{{with .ReplyTo}} · Reply-To {{.}}{{end}} · {{.Sent.Format "15:04:05"}}</small><pre>{{.Body}}</pre>
{{with .HTML}}<details><summary>HTML version</summary><iframe sandbox srcdoc="{{.}}" title="HTML version" style="width:100%;height:24rem;border:1px solid #e5e7eb"></iframe></details>{{end}}</article>
{{else}}<p>No mail yet.</p>{{end}}</body></html>`))

// ServeHTTP lists the stored messages, newest first (dev mode only: the
// messages hold reset links). An HTML alternative is shown in a sandboxed
// iframe, so its markup can run no script and reach nothing of this page.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	msgs := s.Messages()
	slices.Reverse(msgs)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = sinkPage.Execute(w, msgs)
}
