package tryit

import (
	"encoding/json"
	"net/http"
)

// ProblemBase prefixes the type URIs of the relay's problems; the code
// follows it, as in the rest of Tollgate.
const ProblemBase = "https://tollgate.dev/problems/"

// Stable codes of the relay's problems.
const (
	CodeBadRequest           = "bad-request"            // 400: malformed JSON, missing api_id
	CodeInvalidMethod        = "invalid-method"         // 400: a method outside the console's set
	CodeInvalidPath          = "invalid-path"           // 400: absolute URL, "..", control characters
	CodeInvalidHeader        = "invalid-header"         // 400: a bad header name or value
	CodeForbiddenHeader      = "forbidden-header"       // 400: Host, Cookie, hop-by-hop, forwarding
	CodeNotFound             = "not-found"              // 404: no such API for this tenant
	CodeMethodNotAllowed     = "method-not-allowed"     // 405: the relay takes POST
	CodeTooLarge             = "too-large"              // 413: the body is over MaxRequestBody
	CodeUnsupportedMediaType = "unsupported-media-type" // 415: not application/json
	CodeGatewayUnreachable   = "gateway-unreachable"    // 502
	CodeGatewayTimeout       = "gateway-timeout"        // 504
)

var titles = map[string]string{
	CodeBadRequest:           "Malformed request",
	CodeInvalidMethod:        "Method not supported",
	CodeInvalidPath:          "Invalid path",
	CodeInvalidHeader:        "Invalid header",
	CodeForbiddenHeader:      "Header not allowed",
	CodeNotFound:             "Not found",
	CodeMethodNotAllowed:     "Method not allowed",
	CodeTooLarge:             "Request body too large",
	CodeUnsupportedMediaType: "Unsupported media type",
	CodeGatewayUnreachable:   "Gateway unreachable",
	CodeGatewayTimeout:       "Gateway timeout",
}

// Problem is an RFC 9457 problem details document of the relay. Detail is
// safe to show to the developer.
type Problem struct {
	Type   string `json:"type"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func problem(status int, code, detail string) *Problem {
	return &Problem{Type: ProblemBase + code, Code: code, Title: titles[code], Status: status, Detail: detail}
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
