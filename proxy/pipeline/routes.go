package pipeline

import (
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/router"
)

// matchRoute checks the request against the API's declared routes (an API
// without routes accepts everything). It runs before authentication, as a
// router would: an undeclared operation is 404 or 405 whoever asks. For 405
// it sets d.Allow.
func matchRoute(api *API, req *Request, d *Decision) *problem.Problem {
	if api.routes == nil {
		return nil
	}
	res, allow := api.routes.Match(req.Method, router.StripPrefix(req.Path, api.Config.BasePath))
	switch res {
	case router.RouteNotFound:
		return problem.NoRoute
	case router.RouteMethodNotAllowed:
		d.Allow = allow
		return problem.MethodNotAllowed
	}
	return nil
}
