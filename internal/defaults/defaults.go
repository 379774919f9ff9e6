// Package defaults fills the unset fields of an options struct from the
// value of its Default…() function: the one way sketchd's packages apply
// their defaults (api.Limits, ingest.Options, decode.Options,
// window.Options, query.Options, store.Options, gen.Options).
//
// The rule, which each options struct documents as "zero values take the
// defaults": a field is unset when it is the zero value (0, "", nil, a
// struct of zero fields), or when it is a negative number, unless the
// field's tag is `default:"keep-negative"`: there a negative value means
// something (usually "off", as the field's doc says) and is kept.
// Unexported fields are left alone.
package defaults

import "reflect"

// Fill returns o with every unset field (see the package doc) taken from
// def. T must be a struct type.
func Fill[T any](o, def T) T {
	v := reflect.ValueOf(&o).Elem()
	d := reflect.ValueOf(def)
	t := v.Type()
	for i := range t.NumField() {
		if f := v.Field(i); f.CanSet() && unset(f, t.Field(i)) {
			f.Set(d.Field(i))
		}
	}
	return o
}

// keepNegative is the tag value of fields where a negative value is kept.
const keepNegative = "keep-negative"

func unset(f reflect.Value, sf reflect.StructField) bool {
	if f.IsZero() {
		return true
	}
	if sf.Tag.Get("default") == keepNegative {
		return false
	}
	switch {
	case f.CanInt():
		return f.Int() < 0
	case f.CanFloat():
		return f.Float() < 0
	}
	return false
}
