// Package tryit is the developer portal's try-it relay: it takes a request a
// developer composed in the API reference's console and sends it to the
// tenant's gateway, and only there, then reports status, headers, body and
// latency as JSON. The relay runs on the portal host, so the gateway needs no
// CORS for it, and the browser never talks to the gateway directly.
package tryit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults of the Relay's limits.
const (
	DefaultTimeout         = 30 * time.Second
	DefaultMaxRequestBody  = 1 << 20
	DefaultMaxResponseBody = 2 << 20
	// DefaultUserAgent is sent when the developer sets no User-Agent.
	DefaultUserAgent = "Tollgate-TryIt/1"
)

// Limits on the request a developer composes, beyond the body.
const (
	maxHeaders      = 64
	maxHeaderBytes  = 32 << 10
	maxPathLen      = 4096
	maxQueryParams  = 100
	maxEnvelopeSlop = 64 << 10 // JSON around the body: path, query, headers
)

// Request is what the console sends (as JSON) to the relay.
type Request struct {
	// APIID names the API when the route has no {id} wildcard.
	APIID string `json:"api_id,omitempty"`
	// Method is one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS.
	Method string `json:"method"`
	// Path is relative to the API's gateway base URL ("/pets/42"); it may
	// not be an absolute URL or climb out of the base path.
	Path string `json:"path"`
	// Query values: a string or a list of strings per name.
	Query map[string]Values `json:"query,omitempty"`
	// Headers to send; hop-by-hop, cookie, host and forwarding headers are
	// refused.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the request body as text.
	Body string `json:"body,omitempty"`
}

// Values is a query parameter's values: JSON "a" or ["a", "b"].
type Values []string

// UnmarshalJSON accepts a string or an array of strings.
func (v *Values) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Values{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("query values must be a string or a list of strings")
	}
	*v = list
	return nil
}

// Result is the relay's answer about the gateway's response.
type Result struct {
	Status int `json:"status"`
	// Headers joins repeated values with ", ".
	Headers map[string]string `json:"headers"`
	// Body is the response body when it is UTF-8 text.
	Body string `json:"body"`
	// BodyBase64 holds a body that is not UTF-8 text (Body is then "").
	BodyBase64 string `json:"body_base64,omitempty"`
	// Truncated is true when the body was cut at the response limit.
	Truncated bool `json:"truncated"`
	// DurationMS is the time from sending the request to the end of the
	// (possibly truncated) body, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
}

// Relay is an http.Handler for POST requests carrying a Request as JSON.
// Mount it per API under a route with an {id} wildcard
// ("POST /apis/{id}/try"), or anywhere when the JSON names api_id. It
// answers 200 with a Result for any response of the gateway, 4xx/5xx
// problem+json when it refuses the request or cannot reach the gateway.
//
// The portal in front of it authenticates the developer and checks CSRF
// (the console sends the token in X-CSRF-Token); the relay itself never
// forwards the portal's cookies or any of the incoming request's headers,
// and requires Content-Type application/json, which a cross-site form
// cannot send.
type Relay struct {
	// Gateway returns the gateway base URL ("http://acme.localhost:8000/pets")
	// of the API apiID of the tenant the request is for; the portal resolves
	// the tenant from the request's host (ctx is the request's context).
	// ok false, for an unknown API or another tenant's, answers 404. The
	// relay calls no other host. Required.
	Gateway func(ctx context.Context, apiID string) (baseURL *url.URL, ok bool)
	// DialAddr, if set ("127.0.0.1:8000"), is dialled for every connection
	// instead of the base URL's host, while the URL, the Host header and TLS
	// server name stay the gateway's. For laptops, where "<slug>.localhost"
	// may not resolve. Ignored when Transport is set.
	DialAddr string
	// Transport sends the requests. If nil, the relay uses its own
	// transport: no proxy, HTTP/2 when offered, DialAddr honoured.
	Transport http.RoundTripper
	// Timeout bounds a whole call, body included. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxRequestBody bounds the body a developer sends. Zero means
	// DefaultMaxRequestBody.
	MaxRequestBody int64
	// MaxResponseBody is where the response body is cut (Result.Truncated).
	// Zero means DefaultMaxResponseBody.
	MaxResponseBody int64
	// Logger receives gateway failures. If nil, nothing is logged.
	Logger *slog.Logger

	once   sync.Once
	client *http.Client
}

// allowedMethods are the methods the console offers.
var allowedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// ServeHTTP relays one request.
func (rl *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeProblem(w, problem(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "the relay takes POST requests"))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeProblem(w, problem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "send the request as application/json"))
		return
	}
	in, p := rl.decode(w, r)
	if p != nil {
		writeProblem(w, p)
		return
	}
	apiID := r.PathValue("id")
	switch {
	case apiID == "":
		apiID = in.APIID
	case in.APIID != "" && in.APIID != apiID:
		writeProblem(w, problem(http.StatusBadRequest, CodeBadRequest, "api_id does not match the API of the URL"))
		return
	}
	if apiID == "" {
		writeProblem(w, problem(http.StatusBadRequest, CodeBadRequest, "api_id is required"))
		return
	}
	base, ok := rl.Gateway(r.Context(), apiID)
	if !ok || base == nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		writeProblem(w, problem(http.StatusNotFound, CodeNotFound, "no such API"))
		return
	}
	req, p := rl.outgoing(r.Context(), base, in)
	if p != nil {
		writeProblem(w, p)
		return
	}
	res, p := rl.send(req, apiID)
	if p != nil {
		writeProblem(w, p)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_ = json.NewEncoder(w).Encode(res)
}

func (rl *Relay) maxRequestBody() int64 {
	if rl.MaxRequestBody > 0 {
		return rl.MaxRequestBody
	}
	return DefaultMaxRequestBody
}

func (rl *Relay) maxResponseBody() int64 {
	if rl.MaxResponseBody > 0 {
		return rl.MaxResponseBody
	}
	return DefaultMaxResponseBody
}

// decode reads the JSON envelope strictly. Its limit allows for the body's
// JSON escaping; the body itself is checked against MaxRequestBody after.
func (rl *Relay) decode(w http.ResponseWriter, r *http.Request) (Request, *Problem) {
	var in Request
	limit := 2*rl.maxRequestBody() + maxEnvelopeSlop
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return in, problem(http.StatusRequestEntityTooLarge, CodeTooLarge, "the request body is too large")
		}
		return in, problem(http.StatusBadRequest, CodeBadRequest, "the request is not valid JSON: "+err.Error())
	}
	if dec.More() {
		return in, problem(http.StatusBadRequest, CodeBadRequest, "the request holds more than one JSON value")
	}
	if int64(len(in.Body)) > rl.maxRequestBody() {
		return in, problem(http.StatusRequestEntityTooLarge, CodeTooLarge, "the request body is larger than the console allows")
	}
	return in, nil
}

// outgoing builds the request to the gateway, refusing anything that could
// leave the API's base URL or smuggle headers.
func (rl *Relay) outgoing(ctx context.Context, base *url.URL, in Request) (*http.Request, *Problem) {
	method := strings.ToUpper(strings.TrimSpace(in.Method))
	if !allowedMethods[method] {
		return nil, problem(http.StatusBadRequest, CodeInvalidMethod, "method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
	}
	target, err := joinPath(base, in.Path)
	if err != nil {
		return nil, problem(http.StatusBadRequest, CodeInvalidPath, "path "+err.Error())
	}
	if len(in.Query) > maxQueryParams {
		return nil, problem(http.StatusBadRequest, CodeBadRequest, "too many query parameters")
	}
	q := url.Values{}
	for name, vals := range in.Query {
		if name == "" {
			return nil, problem(http.StatusBadRequest, CodeBadRequest, "a query parameter has no name")
		}
		q[name] = vals
	}
	target.RawQuery = q.Encode()
	header, p := outgoingHeader(in.Headers)
	if p != nil {
		return nil, p
	}
	var body io.Reader
	if in.Body != "" {
		body = strings.NewReader(in.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target.String(), body)
	if err != nil {
		return nil, problem(http.StatusBadRequest, CodeInvalidPath, "the URL cannot be built: "+err.Error())
	}
	req.Header = header
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", DefaultUserAgent)
	}
	return req, nil
}

// send calls the gateway and reads the response up to the limit.
func (rl *Relay) send(req *http.Request, apiID string) (Result, *Problem) {
	timeout := rl.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	req = req.WithContext(ctx)
	start := time.Now()
	resp, err := rl.httpClient().Do(req)
	if err != nil {
		return Result{}, rl.gatewayProblem(req, apiID, err)
	}
	defer resp.Body.Close()
	limit := rl.maxResponseBody()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Result{}, rl.gatewayProblem(req, apiID, err)
	}
	elapsed := time.Since(start)
	res := Result{Status: resp.StatusCode, Headers: make(map[string]string, len(resp.Header)),
		DurationMS: float64(elapsed.Microseconds()) / 1000}
	if int64(len(data)) > limit {
		data, res.Truncated = trimPartialRune(data[:limit]), true
	}
	for name, vals := range resp.Header {
		res.Headers[name] = strings.Join(vals, ", ")
	}
	if utf8.Valid(data) {
		res.Body = string(data)
	} else {
		res.BodyBase64 = base64.StdEncoding.EncodeToString(data)
	}
	return res, nil
}

func (rl *Relay) gatewayProblem(req *http.Request, apiID string, err error) *Problem {
	var ne net.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
	if rl.Logger != nil {
		rl.Logger.Warn("try-it relay: gateway call failed", "api_id", apiID, "method", req.Method,
			"host", req.URL.Host, "timeout", timedOut, "err", err)
	}
	if timedOut {
		return problem(http.StatusGatewayTimeout, CodeGatewayTimeout, "the gateway did not answer in time")
	}
	if errors.Is(err, context.Canceled) {
		return problem(http.StatusBadGateway, CodeGatewayUnreachable, "the request was canceled")
	}
	return problem(http.StatusBadGateway, CodeGatewayUnreachable, "the gateway could not be reached")
}

func (rl *Relay) httpClient() *http.Client {
	rl.once.Do(func() {
		rt := rl.Transport
		if rt == nil {
			d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
			tr := &http.Transport{
				Proxy:                  nil, // the gateway is ours: never via an environment proxy
				DialContext:            d.DialContext,
				ForceAttemptHTTP2:      true,
				MaxIdleConns:           64,
				MaxIdleConnsPerHost:    8,
				IdleConnTimeout:        90 * time.Second,
				TLSHandshakeTimeout:    10 * time.Second,
				MaxResponseHeaderBytes: 64 << 10,
			}
			if addr := rl.DialAddr; addr != "" {
				tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
					return d.DialContext(ctx, network, addr)
				}
			}
			rt = tr
		}
		rl.client = &http.Client{
			Transport: rt,
			// A redirect is the gateway's answer: show it, never follow it
			// (it could point anywhere).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return rl.client
}

// trimPartialRune drops a UTF-8 sequence cut off at the end of b, so that a
// truncated text body stays text.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return b
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}

// joinPath appends a client path to the base URL's path. It refuses
// absolute and scheme-relative URLs, "." and ".." segments (also
// percent-encoded), control characters, backslashes, queries and
// fragments; other bytes outside the URL path alphabet are percent-encoded.
func joinPath(base *url.URL, p string) (*url.URL, error) {
	if len(p) > maxPathLen {
		return nil, errors.New("is too long")
	}
	if hasScheme(p) || strings.HasPrefix(p, "//") {
		return nil, errors.New("must be relative to the API's base URL, not an absolute URL")
	}
	if p != "" && p[0] != '/' {
		p = "/" + p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return nil, errors.New("must not contain control characters (CR, LF, ...)")
		case c == '\\':
			return nil, errors.New("must not contain backslashes")
		case c == '?' || c == '#':
			return nil, errors.New("must not contain ? or #: send query parameters in query")
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return nil, errors.New("has a malformed percent-escape")
			}
			b.WriteByte(c)
		case pathByte(c):
			b.WriteByte(c)
		default:
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	escaped := b.String()
	for _, seg := range strings.Split(escaped, "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return nil, errors.New("has a malformed percent-escape")
		}
		for _, part := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
			if part == "." || part == ".." {
				return nil, errors.New("must not contain . or .. segments")
			}
		}
		if dec == "." || dec == ".." {
			return nil, errors.New("must not contain . or .. segments")
		}
		if strings.ContainsFunc(dec, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, errors.New("must not contain control characters (CR, LF, ...)")
		}
	}
	raw := strings.TrimSuffix(base.EscapedPath(), "/") + escaped
	if raw == "" {
		raw = "/"
	}
	path, err := url.PathUnescape(raw)
	if err != nil {
		return nil, errors.New("has a malformed percent-escape")
	}
	return &url.URL{Scheme: base.Scheme, Host: base.Host, Path: path, RawPath: raw}, nil
}

// hasScheme reports whether p starts like "scheme:" (RFC 3986).
func hasScheme(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':':
			return i > 0
		default:
			return false
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// pathByte reports whether c may appear unescaped in a URL path (RFC 3986
// pchar or "/").
func pathByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0
}

// outgoingHeader validates the developer's headers.
func outgoingHeader(in map[string]string) (http.Header, *Problem) {
	if len(in) > maxHeaders {
		return nil, problem(http.StatusBadRequest, CodeInvalidHeader, "too many headers")
	}
	h := make(http.Header, len(in)+1)
	size := 0
	for name, value := range in {
		if !isToken(name) {
			return nil, problem(http.StatusBadRequest, CodeInvalidHeader, "header name "+quote(name)+" is not a valid token")
		}
		if forbiddenHeader(name) {
			return nil, problem(http.StatusBadRequest, CodeForbiddenHeader, "header "+quote(name)+" cannot be set from the console")
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return nil, problem(http.StatusBadRequest, CodeInvalidHeader, "header "+quote(name)+" contains a control character (CR, LF, ...)")
			}
		}
		size += len(name) + len(value)
		if size > maxHeaderBytes {
			return nil, problem(http.StatusBadRequest, CodeInvalidHeader, "the headers are too large")
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}

// forbidden lists headers the console may not set: the connection's own
// (hop-by-hop), the target (Host), credentials of the portal (cookies), and
// what a proxy would add (forwarding), which the gateway may trust.
var forbidden = map[string]bool{
	"Host": true, "Cookie": true, "Cookie2": true, "Connection": true, "Keep-Alive": true,
	"Transfer-Encoding": true, "Te": true, "Trailer": true, "Upgrade": true, "Content-Length": true,
	"Expect": true, "Forwarded": true, "Via": true, "X-Real-Ip": true, "X-Client-Ip": true,
	"True-Client-Ip": true, "Http2-Settings": true,
}

func forbiddenHeader(name string) bool {
	c := http.CanonicalHeaderKey(name)
	return forbidden[c] || strings.HasPrefix(c, "Proxy-") || strings.HasPrefix(c, "X-Forwarded-") || strings.HasPrefix(c, "Sec-")
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if strings.IndexByte("!#$%&'*+-.^_`|~", c) < 0 {
			return false
		}
	}
	return true
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(bytes.TrimSpace(b))
}
