// Package fault defines the typed errors of the control plane's domain
// packages. The HTTP layer and the portals turn them into responses; the
// domain packages never speak HTTP.
package fault

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound means the object does not exist for the calling tenant. An
// object of another tenant is reported the same way, never as forbidden.
var ErrNotFound = errors.New("not found")

// ErrUnauthenticated means the credentials are missing, unknown or revoked.
var ErrUnauthenticated = errors.New("unauthenticated")

// FieldError is one rejected input field. Field is a path such as
// "targets[1].url"; Message is safe to show to the user.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every rejected field of one request. Nothing was
// written when it is returned.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Add records a rejected field.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Errors = append(e.Errors, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns e if any field was rejected and nil otherwise, so that callers
// can collect every problem before deciding.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Errors) == 0 {
		return nil
	}
	return e
}

// Invalid is a ValidationError of a single field.
func Invalid(field, format string, args ...any) error {
	v := &ValidationError{}
	v.Add(field, format, args...)
	return v
}

// ConflictError means the request clashes with the current state: a unique
// name taken, or an object still in use. Message is safe to show to the user.
type ConflictError struct {
	// Field names the clashing input field, when there is one.
	Field   string
	Message string
}

func (e *ConflictError) Error() string { return "conflict: " + e.Message }

// Is makes errors.Is(err, ErrConflict) match every ConflictError.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrConflict matches every ConflictError with errors.Is.
var ErrConflict = errors.New("conflict")

// Conflict returns a ConflictError.
func Conflict(field, format string, args ...any) error {
	return &ConflictError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// DeniedError means the caller may not do this (yet): the state of its own
// account forbids it, for example an unverified email address. Code is a
// stable machine-readable name (a problem type); Message is safe to show.
type DeniedError struct {
	Code    string
	Message string
}

func (e *DeniedError) Error() string { return "denied: " + e.Code + ": " + e.Message }

// Denied returns a DeniedError.
func Denied(code, format string, args ...any) error {
	return &DeniedError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ThrottledError means too many attempts of one kind from one account or
// client; the caller may retry after RetryAfter.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many attempts: retry after %s", e.RetryAfter.Round(time.Second))
}

// LimitError means the change would take the tenant past one of the limits
// the operator sets per tenant (services/limits): too many objects of a
// kind, or a value below an allowed minimum. Nothing was written.
//
// A limit is a conflict with the tenant's state, so errors.As(err,
// **ConflictError) matches a LimitError too (with its Field and Message):
// every caller that shows conflicts next to their fields shows limits the
// same way. Callers that want the limit's name and value (the management
// API's limit-exceeded problem) look for a LimitError first.
type LimitError struct {
	// Limit is the stable name of the limit, such as "apis" or
	// "min_health_interval_ms".
	Limit string
	// Max is the limit's value for this tenant: the most allowed, or for a
	// lower bound (Lower) the least allowed.
	Max int64
	// Value is what the change would have made it (a count, a size or the
	// requested value).
	Value int64
	// Lower marks a lower bound (a minimum, such as a health-check
	// interval) rather than a maximum.
	Lower bool
	// Field names the input field that asked for too much, when there is one.
	Field string
	// Message is safe to show to the user.
	Message string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("limit exceeded: %s (limit %d, would be %d): %s", e.Limit, e.Max, e.Value, e.Message)
}

// Is makes errors.Is(err, ErrConflict) and errors.Is(err, ErrLimit) match.
func (e *LimitError) Is(target error) bool { return target == ErrConflict || target == ErrLimit }

// As lets errors.As find a LimitError as a *ConflictError.
func (e *LimitError) As(target any) bool {
	if c, ok := target.(**ConflictError); ok {
		*c = &ConflictError{Field: e.Field, Message: e.Message}
		return true
	}
	return false
}

// ErrLimit matches every LimitError with errors.Is.
var ErrLimit = errors.New("limit exceeded")
