package sketchd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// UnmarshalJSON decodes a stream spec, starting from DefaultStream so that
// omitted fields keep their defaults, and rejecting unknown fields.
func (s *Stream) UnmarshalJSON(b []byte) error {
	if err := strictJSON(b, reflect.TypeFor[Stream]()); err != nil {
		return err
	}
	type plain Stream
	p := plain(DefaultStream())
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("stream spec: %w", err)
	}
	*s = Stream(p)
	s.Normalize()
	return nil
}

// UnmarshalYAML decodes a stream spec from YAML like UnmarshalJSON does.
func (s *Stream) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKnownFields(n, reflect.TypeFor[Stream](), ""); err != nil {
		return err
	}
	type plain Stream
	p := plain(DefaultStream())
	if err := n.Decode(&p); err != nil {
		return fmt.Errorf("stream spec: %w", err)
	}
	*s = Stream(p)
	s.Normalize()
	return nil
}

// ParseStreamJSON decodes and validates one stream spec (the admin API's
// request body).
func ParseStreamJSON(b []byte) (Stream, error) {
	var s Stream
	if err := json.Unmarshal(b, &s); err != nil {
		return Stream{}, err
	}
	return s, s.Validate()
}

// checkKnownFields reports mapping keys of n that t (a struct) has no yaml
// field for, recursing into nested structs, maps of structs and slices.
// yaml.v3 only checks unknown fields at the top-level Decoder, not inside an
// UnmarshalYAML, so the spec checks its own.
func checkKnownFields(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // a type error; Decode reports it
		}
		fields := map[string]reflect.Type{}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				known := make([]string, 0, len(fields))
				for f := range fields {
					known = append(known, f)
				}
				slices.Sort(known)
				return fmt.Errorf("stream spec: line %d: unknown field %q%s (known: %s)",
					n.Content[i].Line, k, inPath(path), strings.Join(known, ", "))
			}
			if err := checkKnownFields(n.Content[i+1], ft, join(path, k)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKnownFields(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKnownFields(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func inPath(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}
