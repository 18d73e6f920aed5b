package engine

import (
	"errors"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/router"
)

// ReadRequest fills preq with what the pipeline reads of the client's
// request. pathBuf backs a path rewritten in normal form; it must outlive
// preq's use.
//
// The path is checked and put in normal form before anything reads it: the
// router and the pipeline read it decoded (URI.Path), the upstream gets the
// normal form (URI.PathOriginal), and router.CleanPath refuses what those
// two could read differently. A refused path is answered with the problem
// returned (preq is filled all the same).
func ReadRequest(ctx *fasthttp.RequestCtx, preq *pipeline.Request, pathBuf []byte) *problem.Problem {
	req := &ctx.Request
	var pr *problem.Problem
	clean, changed, err := router.CleanPath(pathBuf, req.URI().PathOriginal())
	if err != nil {
		pr = pathProblem(err)
	} else if changed {
		req.URI().SetPathBytes(clean)
	}
	*preq = pipeline.Request{
		Host:          req.Header.Host(),
		Path:          req.URI().Path(),
		Authorization: req.Header.Peek(hdrAuthorization),
		APIKey:        req.Header.Peek(hdrAPIKey),
		Method:        req.Header.Method(),
		ClientIP:      clientIP(ctx.RemoteAddr()),
		Headers:       &req.Header,
	}
	return pr
}

// pathProblem is the answer to a path router.CleanPath refuses.
func pathProblem(err error) *problem.Problem {
	if errors.Is(err, router.ErrPathTooLong) || errors.Is(err, router.ErrTooManySegments) {
		return problemURITooLong
	}
	return problemAmbiguousPath
}

// clientIP is the client's address in binary form, as the connection holds
// it (no copy: the pipeline only hashes it). It is not on the handler's
// stack on purpose: the pipeline reads headers through an interface, which
// makes everything a pipeline.Request points to escape.
func clientIP(a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		if v4 := ta.IP.To4(); v4 != nil {
			return v4
		}
		return ta.IP
	}
	return []byte(a.String())
}

// appendRemoteIP appends the client's address in text form.
func appendRemoteIP(b []byte, a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().AppendTo(b)
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return append(b, a.String()...)
	}
	return append(b, host...)
}
