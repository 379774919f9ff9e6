package sketchd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// strictJSON checks what encoding/json lets through when decoding into t:
// a key that matches a field only case-insensitively ("Name" for "name"),
// and a key given twice in one object (where the last would silently
// win). Both are errors in a spec. Syntax and type errors are left to the
// decoder.
func strictJSON(b []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := strictValue(dec, t, "")
	if _, ok := err.(*json.SyntaxError); ok { //nolint:errorlint // a decoder error, not wrapped
		return nil // the decoder reports it with its offset
	}
	return err
}

// strictValue reads one value from dec, checking its objects' keys
// against t (nil: anything).
func strictValue(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return strictObject(dec, t, path)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := strictValue(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ]
		return err
	}
	return nil
}

func strictObject(dec *json.Decoder, t reflect.Type, path string) error {
	fields := jsonFields(t)
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := tok.(string)
		if seen[k] {
			return fmt.Errorf("stream spec: key %q given twice%s", k, inPath(path))
		}
		seen[k] = true
		var elem reflect.Type
		switch {
		case fields != nil:
			ft, ok := fields[k]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, k) {
						return fmt.Errorf("stream spec: unknown field %q%s (did you mean %q? keys are case-sensitive)", k, inPath(path), name)
					}
				}
			}
			elem = ft
		case t != nil && t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		if err := strictValue(dec, elem, join(path, k)); err != nil {
			return err
		}
	}
	_, err := dec.Token() // }
	return err
}

// jsonFields maps the JSON names of struct type t's fields to their
// types; nil when t is not a struct.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
