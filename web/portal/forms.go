package portal

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/web/portal/view"
)

const maxFormBytes = 4 << 20

// readForm parses a posted form (bounded) into a view.Form.
func readForm(w http.ResponseWriter, r *http.Request) view.Form {
	// The body is already bounded (maxFormBytes) by the middleware.
	_ = r.ParseMultipartForm(maxFormBytes)
	_ = r.ParseForm()
	f := view.Form{Values: r.PostForm, Errors: map[string]string{}}
	if f.Values == nil {
		f.Values = map[string][]string{}
	}
	f.Values.Del("csrf_token")
	return f
}

func blankForm() view.Form {
	return view.Form{Values: map[string][]string{}, Errors: map[string]string{}}
}

var indexRE = regexp.MustCompile(`\[(\d+)\]`)

// fieldAliases maps a domain field path (after indices are removed and dots
// turned into underscores) to the form input that shows its error.
var fieldAliases = map[string]string{
	"price_amount_cents":               "price",
	"price_currency":                   "currency",
	"health_check_path":                "hc_path",
	"health_check_interval_ms":         "hc_interval",
	"health_check_timeout_ms":          "hc_timeout",
	"health_check_healthy_threshold":   "hc_healthy",
	"health_check_unhealthy_threshold": "hc_unhealthy",
	"health_check_expected_status":     "hc_status",
	"targets_url":                      "targets",
	"targets_weight":                   "targets",
}

// formField turns a fault field path such as "targets[1].url" into the input
// name, and says which line of a multi-line input it came from.
func formField(path string) (name, prefix string) {
	if m := indexRE.FindStringSubmatch(path); m != nil {
		n, _ := strconv.Atoi(m[1])
		prefix = fmt.Sprintf("line %d: ", n+1)
	}
	name = strings.ReplaceAll(indexRE.ReplaceAllString(path, ""), ".", "_")
	if a, ok := fieldAliases[name]; ok {
		name = a
	}
	return name, prefix
}

// applyError puts a domain error on the form: validation and conflict errors
// next to their fields (or at the top when the field has no input), and
// reports false for anything else, which the caller treats as internal.
func applyError(f *view.Form, err error, known ...string) bool {
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	has := func(n string) bool {
		if len(known) == 0 {
			return true
		}
		for _, k := range known {
			if k == n {
				return true
			}
		}
		return false
	}
	var ve *fault.ValidationError
	var ce *fault.ConflictError
	switch {
	case errors.As(err, &ve):
		var top []string
		for _, fe := range ve.Errors {
			name, prefix := formField(fe.Field)
			msg := prefix + fe.Message
			if !has(name) {
				top = append(top, fe.Field+" "+fe.Message)
				continue
			}
			if old := f.Errors[name]; old != "" {
				msg = old + "; " + msg
			}
			f.Errors[name] = msg
		}
		if len(top) > 0 {
			f.Message = strings.Join(top, "; ")
		}
		return true
	case errors.As(err, &ce):
		name, _ := formField(ce.Field)
		if ce.Field != "" && has(name) {
			f.Errors[name] = ce.Message
		} else {
			f.Message = ce.Message
		}
		return true
	}
	return false
}

// refusal returns the user-facing reason of a change the rules refused (a
// conflict or a denial, such as a subscription already decided or a
// suspended consumer); ok is false for any other error.
func refusal(err error) (reason string, ok bool) {
	var ce *fault.ConflictError
	var de *fault.DeniedError
	switch {
	case errors.As(err, &ce):
		return ce.Message, true
	case errors.As(err, &de):
		return de.Message, true
	}
	return "", false
}
