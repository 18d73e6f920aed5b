package mailtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// maxDepth bounds multipart nesting, as a mail client would.
const maxDepth = 8

// parse fills the parsed view of a Received from raw message data.
func parse(data []byte) Received {
	r := Received{Data: data}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		r.ParseErr = fmt.Errorf("read message: %w", err)
		return r
	}
	r.Header = msg.Header
	dec := mime.WordDecoder{}
	if r.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		r.ParseErr = fmt.Errorf("decode subject: %w", err)
	}
	if err := r.walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0); err != nil && r.ParseErr == nil {
		r.ParseErr = err
	}
	for _, p := range r.Parts {
		switch {
		case p.ContentType == "text/plain" && r.Text == "":
			r.Text = p.Body
		case p.ContentType == "text/html" && r.HTML == "":
			r.HTML = p.Body
		}
	}
	return r
}

// walk appends the leaf parts of one entity to r.Parts.
func (r *Received) walk(contentType, cte string, body io.Reader, depth int) error {
	if contentType == "" {
		contentType = "text/plain; charset=us-ascii" // RFC 2045's default
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		if depth >= maxDepth {
			return fmt.Errorf("multipart nested deeper than %d", maxDepth)
		}
		if params["boundary"] == "" {
			return fmt.Errorf("%s without boundary", mediaType)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart: NextPart would decode quoted-printable itself and
			// hide the encoding header; decode() handles every encoding.
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", mediaType, err)
			}
			if err := r.walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1); err != nil {
				return err
			}
		}
	}
	b, err := decode(cte, body)
	if err != nil {
		return fmt.Errorf("%s: %w", mediaType, err)
	}
	r.Parts = append(r.Parts, Part{ContentType: mediaType, Charset: strings.ToLower(params["charset"]), Body: strings.ReplaceAll(string(b), "\r\n", "\n")})
	return nil
}

// decode undoes a Content-Transfer-Encoding.
func decode(cte string, body io.Reader) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return io.ReadAll(body)
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(body))
	case "base64":
		// base64.NewDecoder skips the CRLF line breaks of MIME base64.
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, body))
	default:
		return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", cte)
	}
}
