package router

import (
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// RouteResult is what matching a request against an API's routes decided.
type RouteResult uint8

// Results of Routes.Match.
const (
	// RouteMatched: a route declares this method at this path (or the API
	// declares no routes at all).
	RouteMatched RouteResult = iota
	// RouteNotFound: no route's path template matches the path.
	RouteNotFound
	// RouteMethodNotAllowed: path templates match, but none with this
	// method; the Allow value lists the methods they declare.
	RouteMethodNotAllowed
)

// standardMethods take the first bits of a method set, in the order an Allow
// header lists them.
var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

// maxMethods is the number of distinct methods one API's routes may use
// (the bits of a method set).
const maxMethods = 64

// Routes matches requests to the operations of one API: a segment trie of
// its path templates, compiled once per snapshot and never mutated. A request
// matches when any route with its method has a template matching its path;
// templates are tried literal segments first, so the common case stops at
// the first hit. Match does not allocate except to render the Allow value of
// a 405 whose path matches several templates with different method sets.
//
// A nil *Routes matches everything (an API without routes).
type Routes struct {
	root    node
	methods []string          // bit i of a method set is methods[i]
	allow   map[uint64][]byte // pre-rendered Allow values of each node's method set
}

// node is one segment position of the trie.
type node struct {
	static  map[string]*node // children by literal segment
	params  []paramEdge      // children by segment pattern, in declaration order
	methods uint64           // methods of the templates ending here
}

// paramEdge is a child reached by a segment with parameters: "{id}" (any
// non-empty segment) or a pattern mixing literals and parameters such as
// "{name}.json".
type paramEdge struct {
	shape   string  // the segment with parameter names removed: "{}.json"
	pattern []int16 // glob ops (opAny, opStar, literal bytes); nil for "{}"
	next    *node
}

// Glob ops of a segment pattern; values 0-255 are literal bytes. A parameter
// is opAny followed by opStar: one byte or more.
const (
	opAny  int16 = -1
	opStar int16 = -2
)

// CompileRoutes builds the matcher of an API's routes; it returns nil (match
// everything) for none. Each route must pass proxycfg.ValidateRoute. A GET
// route also admits HEAD.
func CompileRoutes(routes []proxycfg.Route) (*Routes, error) {
	if len(routes) == 0 {
		return nil, nil
	}
	r := &Routes{methods: append([]string(nil), standardMethods...), allow: map[uint64][]byte{}}
	for _, rt := range routes {
		if err := proxycfg.ValidateRoute(rt); err != nil {
			return nil, err
		}
		bit, err := r.methodBit(rt.Method)
		if err != nil {
			return nil, err
		}
		if rt.Method == "GET" {
			bit |= 1 << 1 // HEAD
		}
		n := &r.root
		for seg := range strings.SplitSeq(rt.Path[1:], "/") {
			n = n.child(seg)
		}
		n.methods |= bit
	}
	r.renderAllow(&r.root)
	return r, nil
}

// methodBit returns the bit of method, assigning the next free one to a
// method not seen before.
func (r *Routes) methodBit(method string) (uint64, error) {
	for i, m := range r.methods {
		if m == method {
			return 1 << i, nil
		}
	}
	if len(r.methods) == maxMethods {
		return 0, fmt.Errorf("more than %d distinct route methods", maxMethods)
	}
	r.methods = append(r.methods, method)
	return 1 << (len(r.methods) - 1), nil
}

// child returns (creating it) the child of n for one template segment.
func (n *node) child(seg string) *node {
	if !strings.Contains(seg, "{") {
		if c := n.static[seg]; c != nil {
			return c
		}
		if n.static == nil {
			n.static = map[string]*node{}
		}
		c := &node{}
		n.static[seg] = c
		return c
	}
	shape, pattern := compileSegment(seg)
	for i := range n.params {
		if n.params[i].shape == shape {
			return n.params[i].next
		}
	}
	c := &node{}
	n.params = append(n.params, paramEdge{shape: shape, pattern: pattern, next: c})
	return c
}

// compileSegment turns a validated template segment with parameters into its
// shape and glob pattern (nil for a segment that is one parameter).
func compileSegment(seg string) (string, []int16) {
	var shape strings.Builder
	var pattern []int16
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '{' {
			shape.WriteByte(c)
			pattern = append(pattern, int16(c))
			continue
		}
		i += strings.IndexByte(seg[i:], '}')
		shape.WriteString("{}")
		pattern = append(pattern, opAny, opStar)
	}
	if shape.String() == "{}" {
		return "{}", nil
	}
	return shape.String(), pattern
}

// renderAllow pre-renders the Allow value of every method set a node holds.
func (r *Routes) renderAllow(n *node) {
	if n.methods != 0 {
		if _, ok := r.allow[n.methods]; !ok {
			r.allow[n.methods] = r.appendAllow(nil, n.methods)
		}
	}
	for _, c := range n.static {
		r.renderAllow(c)
	}
	for i := range n.params {
		r.renderAllow(n.params[i].next)
	}
}

// appendAllow appends the methods of set as an Allow header value.
func (r *Routes) appendAllow(b []byte, set uint64) []byte {
	for i, m := range r.methods {
		if set&(1<<i) == 0 {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, m...)
	}
	return b
}

// Match matches a request's method and its path relative to the API's base
// path (starting with "/", as StripPrefix returns it). For
// RouteMethodNotAllowed, allow is the Allow header value; callers must not
// modify it.
func (r *Routes) Match(method, path []byte) (result RouteResult, allow []byte) {
	if r == nil {
		return RouteMatched, nil
	}
	if len(path) == 0 || path[0] != '/' {
		return RouteNotFound, nil
	}
	var bit uint64
	for i, m := range r.methods {
		if string(method) == m {
			bit = 1 << i
			break
		}
	}
	var seen uint64
	if r.root.walk(path[1:], bit, &seen) {
		return RouteMatched, nil
	}
	if seen == 0 {
		return RouteNotFound, nil
	}
	if a, ok := r.allow[seen]; ok {
		return RouteMethodNotAllowed, a
	}
	return RouteMethodNotAllowed, r.appendAllow(nil, seen)
}

// walk matches rest, the path after a "/", below n. It reports whether a
// template with method bit matches, and adds the methods of every fully
// matching template it visits to seen. Each trie node is visited at most
// once per request.
func (n *node) walk(rest []byte, bit uint64, seen *uint64) bool {
	seg, tail, more := rest, []byte(nil), false
	for i, c := range rest {
		if c == '/' {
			seg, tail, more = rest[:i], rest[i+1:], true
			break
		}
	}
	if c := n.static[string(seg)]; c != nil && c.visit(tail, more, bit, seen) {
		return true
	}
	for i := range n.params {
		p := &n.params[i]
		if p.match(seg) && p.next.visit(tail, more, bit, seen) {
			return true
		}
	}
	return false
}

// visit continues a walk at n after one matched segment.
func (n *node) visit(tail []byte, more bool, bit uint64, seen *uint64) bool {
	if more {
		return n.walk(tail, bit, seen)
	}
	*seen |= n.methods
	return n.methods&bit != 0
}

// match reports whether one request path segment fits the edge's pattern.
// It is the classic linear-backtracking glob match (one saved star), so its
// cost is at most len(seg)*len(pattern).
func (p *paramEdge) match(seg []byte) bool {
	if p.pattern == nil {
		return len(seg) > 0
	}
	pat := p.pattern
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(pat) || sx < len(seg) {
		if px < len(pat) {
			switch op := pat[px]; op {
			case opStar:
				starPx, starSx = px, sx+1
				px++
				continue
			case opAny:
				if sx < len(seg) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(seg) && int16(seg[sx]) == op {
					px++
					sx++
					continue
				}
			}
		}
		if starPx >= 0 && starSx <= len(seg) {
			px, sx = starPx+1, starSx
			starSx++
			continue
		}
		return false
	}
	return true
}
