package router

import (
	"bytes"
	"fmt"
	"slices"
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
// (the bits of a method set; the snapshot's validation checks it too).
const maxMethods = proxycfg.MaxRouteMethods

// Routes matches requests to the operations of one API: a segment trie of
// its path templates, compiled once per snapshot and never mutated. A request
// matches when any route with its method has a template matching its path;
// templates are tried literal segments first, so the common case stops at
// the first hit. Match does not allocate except to render the Allow value of
// a 405 whose path matches several templates with different method sets.
//
// Matching runs before authentication, so its cost is what an anonymous
// client can make the gateway spend: it is linear in the path. The walk
// visits every trie node at most once, and a segment with parameters
// matches without backtracking (segment.match), so a request costs at most
// the path's length times the API's parameter edges at one depth, never
// more, whatever the templates (the old backtracking glob cost up to the
// path's length times the template's, about 240 ms of CPU for one request).
//
// A nil *Routes matches everything (an API without routes).
type Routes struct {
	root    node
	methods []string     // bit i of a method set is methods[i] (standardMethods itself until another is used)
	allow   []allowValue // pre-rendered Allow values of each node's method set
}

// allowValue is the Allow header value of a method set. An API's routes
// hold a few distinct sets: a slice takes less memory than a map (a
// platform holds 100,000 APIs) and is as fast to search.
type allowValue struct {
	set   uint64
	value []byte
}

// node is one segment position of the trie. Small fan-outs, the common
// case, are searched in a slice (less memory than a map, and as fast for a
// few entries); a node with more than maxScan literal children holds them
// in a map instead.
type node struct {
	static  []staticEdge     // children by literal segment, in declaration order (nil once index is made)
	index   map[string]*node // children by literal segment, past maxScan of them
	params  []paramEdge      // children by segment pattern, in declaration order
	methods uint64           // methods of the templates ending here
}

// staticEdge is a child reached by a literal segment.
type staticEdge struct {
	seg  string
	next *node
}

// maxScan is the most literal children a node searches by scanning.
const maxScan = 16

// staticChild is the child of n by the literal segment seg, or nil.
func (n *node) staticChild(seg []byte) *node {
	if n.index != nil {
		return n.index[string(seg)]
	}
	for i := range n.static {
		if n.static[i].seg == string(seg) {
			return n.static[i].next
		}
	}
	return nil
}

// paramEdge is a child reached by a segment with parameters: "{id}" (any
// non-empty segment) or a pattern mixing literals and parameters such as
// "{name}.json".
type paramEdge struct {
	shape   string   // the segment with parameter names removed: "{}.json"
	pattern *segment // nil for "{}"
	next    *node
}

// segment is a compiled segment pattern: literal chunks separated by runs of
// parameters, each parameter one byte or more. It matches in time linear in
// the request segment (no backtracking): the first and last chunks are
// anchored, and each middle chunk is found at its leftmost place after the
// previous one (with a precomputed KMP table), which is optimal because a
// parameter accepts any bytes.
type segment struct {
	prefix string  // literal before the first parameter ("" for none)
	suffix string  // literal after the last parameter ("" for none)
	middle []chunk // literals between parameter runs, in order
	gaps   []int   // minimum bytes of each parameter run: len(middle)+1 entries
	minLen int     // shortest segment that can match
}

// chunk is a literal between two parameter runs with its KMP failure table.
type chunk struct {
	lit  string
	fail []int32
}

// CompileRoutes builds the matcher of an API's routes; it returns nil (match
// everything) for none. Each route must pass proxycfg.ValidateRoute. A GET
// route also admits HEAD.
func CompileRoutes(routes []proxycfg.Route) (*Routes, error) {
	if len(routes) == 0 {
		return nil, nil
	}
	// The standard methods are shared (the capacity makes methodBit's
	// append copy them before adding another).
	r := &Routes{methods: standardMethods[:len(standardMethods):len(standardMethods)]}
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
		if c := n.staticChild([]byte(seg)); c != nil {
			return c
		}
		c := &node{}
		switch {
		case n.index != nil:
			n.index[seg] = c
		case len(n.static) == maxScan:
			n.index = make(map[string]*node, maxScan+1)
			for _, e := range n.static {
				n.index[e.seg] = e.next
			}
			n.index[seg], n.static = c, nil
		default:
			n.static = append(n.static, staticEdge{seg: seg, next: c})
		}
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
// shape and pattern (nil for a segment that is one parameter).
func compileSegment(seg string) (string, *segment) {
	var shape strings.Builder
	var lits []string // literal chunks: len(runs)+1 of them, possibly empty at the ends
	var runs []int    // parameters per run
	var lit strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '{' {
			shape.WriteByte(c)
			lit.WriteByte(c)
			continue
		}
		i += strings.IndexByte(seg[i:], '}')
		shape.WriteString("{}")
		if lit.Len() == 0 && len(runs) > 0 {
			// Adjacent parameters form one run of two bytes or more.
			runs[len(runs)-1]++
			continue
		}
		lits = append(lits, lit.String())
		lit.Reset()
		runs = append(runs, 1)
	}
	lits = append(lits, lit.String())
	if shape.String() == "{}" {
		return "{}", nil
	}
	p := &segment{prefix: lits[0], suffix: lits[len(lits)-1], gaps: runs}
	for _, l := range lits[1 : len(lits)-1] {
		p.middle = append(p.middle, chunk{lit: l, fail: kmpTable(l)})
	}
	p.minLen = len(p.prefix) + len(p.suffix)
	for _, m := range p.middle {
		p.minLen += len(m.lit)
	}
	for _, g := range runs {
		p.minLen += g
	}
	return shape.String(), p
}

// kmpTable is the Knuth-Morris-Pratt failure function of lit: fail[i] is the
// length of the longest proper prefix of lit[:i+1] that is also its suffix.
func kmpTable(lit string) []int32 {
	fail := make([]int32, len(lit))
	k := int32(0)
	for i := 1; i < len(lit); i++ {
		for k > 0 && lit[i] != lit[k] {
			k = fail[k-1]
		}
		if lit[i] == lit[k] {
			k++
		}
		fail[i] = k
	}
	return fail
}

// index returns the first position of c.lit in s, or -1, in O(len(s)).
func (c *chunk) index(s []byte) int {
	lit := c.lit
	if len(lit) == 1 {
		return bytes.IndexByte(s, lit[0])
	}
	k := int32(0)
	for i := 0; i < len(s); i++ {
		for k > 0 && s[i] != lit[k] {
			k = c.fail[k-1]
		}
		if s[i] == lit[k] {
			k++
			if int(k) == len(lit) {
				return i + 1 - len(lit)
			}
		}
	}
	return -1
}

// renderAllow pre-renders the Allow value of every method set a node holds.
func (r *Routes) renderAllow(n *node) {
	if n.methods != 0 && r.allowOf(n.methods) == nil {
		r.allow = append(r.allow, allowValue{set: n.methods, value: r.appendAllow(nil, n.methods)})
	}
	// Compiled: the slices keep what they hold, not their growth.
	n.static, n.params = slices.Clip(slices.Clone(n.static)), slices.Clip(slices.Clone(n.params))
	for _, e := range n.static {
		r.renderAllow(e.next)
	}
	for _, c := range n.index {
		r.renderAllow(c)
	}
	for i := range n.params {
		r.renderAllow(n.params[i].next)
	}
}

// allowOf is the pre-rendered Allow value of set, or nil.
func (r *Routes) allowOf(set uint64) []byte {
	for i := range r.allow {
		if r.allow[i].set == set {
			return r.allow[i].value
		}
	}
	return nil
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
	if len(path) == 0 || path[0] != '/' || len(path) > MaxPathLen {
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
	if a := r.allowOf(seen); a != nil {
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
	if c := n.staticChild(seg); c != nil && c.visit(tail, more, bit, seen) {
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

// match reports whether one request path segment fits the edge's pattern,
// in time linear in len(seg) (see segment).
func (p *paramEdge) match(seg []byte) bool {
	if p.pattern == nil {
		return len(seg) > 0
	}
	return p.pattern.match(seg)
}

func (p *segment) match(seg []byte) bool {
	if len(seg) < p.minLen || string(seg[:len(p.prefix)]) != p.prefix ||
		string(seg[len(seg)-len(p.suffix):]) != p.suffix {
		return false
	}
	pos, end := len(p.prefix), len(seg)-len(p.suffix)
	for i := range p.middle {
		pos += p.gaps[i]
		if pos > end {
			return false
		}
		at := p.middle[i].index(seg[pos:end])
		if at < 0 {
			return false
		}
		pos += at + len(p.middle[i].lit)
	}
	return end-pos >= p.gaps[len(p.gaps)-1]
}
