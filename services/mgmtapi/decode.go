package mgmtapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds request bodies; configuration objects are small.
const maxBody = 1 << 20

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the body exceeds %d bytes", maxBody)}
	}
	if err != nil {
		return nil, badRequest("", "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("", "a JSON object body is required")
	}
	return body, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields,
// wrong types and trailing data with a 400 that names the field.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("", "the body must hold a single JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: unexpected end of input")
	case errors.As(err, &te):
		if te.Field == "" {
			return badRequest("", fmt.Sprintf("the body must be a JSON object, not %s", te.Value))
		}
		return badRequest(te.Field, fmt.Sprintf("must be %s, not %s", jsonType(te.Type.Kind().String()), te.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(name, "unknown field")
	}
	return badRequest("", "malformed JSON: "+err.Error())
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "of another type"
}

// mergePatch applies a PATCH body to cur: every field the body names replaces
// the current value (null resets it), the others stay. The result is decoded
// strictly, so unknown fields and wrong types are refused as for POST.
func mergePatch[T any](cur *T, patch []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(patch, &fields); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest("", "the body must be a JSON object")
		}
		return jsonError(err)
	}
	if fields == nil {
		return badRequest("", "the body must be a JSON object")
	}
	if err := decodeStrict(patch, new(T)); err != nil {
		return err
	}
	raw, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("marshal current: %w", err)
	}
	merged := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &merged); err != nil {
		return fmt.Errorf("unmarshal current: %w", err)
	}
	for k, v := range fields {
		merged[k] = v
	}
	raw, err = json.Marshal(merged)
	if err != nil {
		return fmt.Errorf("marshal merged: %w", err)
	}
	var next T
	if err := decodeStrict(raw, &next); err != nil {
		return err
	}
	*cur = next
	return nil
}
