package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"crier/internal/diag"
	"crier/plugins"
)

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	tomlUnmarshaler = reflect.TypeFor[toml.Unmarshaler]()
	primitiveType   = reflect.TypeFor[toml.Primitive]()
	posType         = reflect.TypeFor[diag.Pos]()
)

// decoder turns TOML text into a Config one key at a time, so that a key of
// the wrong type or an unknown key is reported with its line and does not
// stop the others from being decoded.
//
// The document is first parsed into toml.Primitive values; each table is
// then walked against the struct it fills. A key with no field is unknown;
// a leaf is decoded by the toml package on its own. Because every table
// goes through this walk, MetaData.Undecoded has nothing left to report for
// the tables we know, and the walk sees the index of every array element,
// which Undecoded does not.
type decoder struct {
	file   string
	md     toml.MetaData
	idx    lineIndex
	errs   diag.List
	failed map[string]bool // paths whose value could not be decoded
}

// decode fills c from data and reports whether the document parsed. A
// syntax error stops it; every other problem is collected in d.errs.
func (d *decoder) decode(data []byte, c *Config) bool {
	d.idx = indexLines(data)
	d.failed = make(map[string]bool)
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			d.errs.Addf(d.file, pe.Position.Line, "%s", cleanMessage(pe.Message))
		} else {
			d.errs.Addf(d.file, 0, "%s", cleanMessage(err.Error()))
		}
		return false
	}
	d.md = md
	// Tables owned by plugins are decoded into the plugin's own config
	// struct by the same walk, so that their keys get the same checks and
	// line numbers as the core keys.
	root := reflect.ValueOf(c).Elem()
	owned := make(map[string]toml.Primitive)
	for k, prim := range top {
		if _, core := fieldByKey(root, k); core {
			continue
		}
		if spec, ok := plugins.ByTable(k); ok {
			owned[spec.Name] = prim
			delete(top, k)
		}
	}
	d.table(root, top, "")
	c.Plugins = make(plugins.Configs)
	for _, n := range plugins.Names() {
		spec, _ := plugins.Lookup(n)
		if spec.Config == nil {
			continue
		}
		v := spec.Config()
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Pointer {
			panic("config: plugin " + n + ": Config must return a pointer")
		}
		if prim, ok := owned[n]; ok {
			d.field(rv.Elem(), prim, spec.Table)
		}
		c.Plugins[n] = v
	}
	return true
}

// table decodes the keys of one TOML table into the struct dst, which sits
// at path. Keys are handled in the order they are written.
func (d *decoder) table(dst reflect.Value, keys map[string]toml.Primitive, path string) {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		la, lb := d.idx.line(join(path, a)), d.idx.line(join(path, b))
		if la != lb {
			return la - lb
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		kp := join(path, name)
		f, ok := fieldByKey(dst, name)
		if !ok {
			d.unknown(dst.Type(), kp, name)
			continue
		}
		d.field(f, keys[name], kp)
	}
	d.fillPos(dst, path)
}

// field decodes one value into f, recursing into tables and arrays of
// tables.
func (d *decoder) field(f reflect.Value, prim toml.Primitive, path string) {
	t := f.Type()
	switch {
	case t.Kind() == reflect.Pointer && isTable(t.Elem()):
		if f.IsNil() {
			f.Set(reflect.New(t.Elem()))
		}
		d.field(f.Elem(), prim, path)
	case isTable(t):
		var keys map[string]toml.Primitive
		if !d.isKind(prim, false) || d.md.PrimitiveDecode(prim, &keys) != nil {
			d.typeError(prim, path, "a table")
			return
		}
		d.table(f, keys, path)
	case t.Kind() == reflect.Slice && isTable(t.Elem()):
		var elems []map[string]toml.Primitive
		if !d.isKind(prim, true) || d.md.PrimitiveDecode(prim, &elems) != nil {
			d.typeError(prim, path, "an array of tables")
			return
		}
		s := reflect.MakeSlice(t, len(elems), len(elems))
		for i, keys := range elems {
			d.table(s.Index(i), keys, path+"["+strconv.Itoa(i)+"]")
		}
		f.Set(s)
	default:
		// Decode into a fresh value so that a failure leaves the default.
		v := reflect.New(t)
		if err := d.md.PrimitiveDecode(prim, v.Interface()); err != nil {
			d.failed[path] = true
			var pe toml.ParseError
			if errors.As(err, &pe) {
				d.errs.Addf(d.file, d.idx.line(path), "%s: %s", display(path), cleanMessage(pe.Message))
				return
			}
			d.typeError(prim, path, describe(t))
			return
		}
		f.Set(v.Elem())
	}
}

// isKind reports whether prim holds a table, or an array of tables when
// array is set. The toml package decodes a value of another type into a
// map as an empty table, so this is checked first.
func (d *decoder) isKind(prim toml.Primitive, array bool) bool {
	var raw any
	if d.md.PrimitiveDecode(prim, &raw) != nil {
		return false
	}
	switch v := raw.(type) {
	case map[string]any:
		return !array
	case []map[string]any:
		return array
	case []any:
		if !array {
			return false
		}
		for _, e := range v {
			if _, ok := e.(map[string]any); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// typeError reports a value of the wrong TOML type at path.
func (d *decoder) typeError(prim toml.Primitive, path, want string) {
	d.failed[path] = true
	var got any
	_ = d.md.PrimitiveDecode(prim, &got)
	d.errs.Addf(d.file, d.idx.line(path), "%s: expected %s, found %s", display(path), want, tomlType(got))
}

// unknown reports a key that has no field, suggesting a close one.
func (d *decoder) unknown(t reflect.Type, path, name string) {
	msg := fmt.Sprintf("unknown key %s", display(path))
	var extra []string
	if path == name && t == reflect.TypeFor[Config]() {
		// A top-level table may be a plugin's.
		for _, n := range plugins.Names() {
			if spec, _ := plugins.Lookup(n); spec.Table != "" {
				extra = append(extra, spec.Table)
			}
		}
	}
	if s := suggest(t, name, extra...); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	d.errs.Addf(d.file, d.idx.line(path), "%s", msg)
}

// fillPos sets the diag.Pos field of a decoded table, if it has one.
func (d *decoder) fillPos(dst reflect.Value, path string) {
	if path == "" {
		return
	}
	for i := range dst.NumField() {
		sf := dst.Type().Field(i)
		if sf.Type == posType && sf.IsExported() {
			dst.Field(i).Set(reflect.ValueOf(diag.Pos{
				File: d.file,
				Line: d.idx.line(path),
				Keys: d.idx.under(path),
			}))
		}
	}
}

// isTable reports whether t is decoded as a TOML table by the walk: a
// struct that does not decode itself.
func isTable(t reflect.Type) bool {
	if t.Kind() != reflect.Struct || t == primitiveType {
		return false
	}
	p := reflect.PointerTo(t)
	return !p.Implements(textUnmarshaler) && !p.Implements(tomlUnmarshaler) &&
		!t.Implements(textUnmarshaler) && !t.Implements(tomlUnmarshaler)
}

// tagName returns the TOML key of a struct field, or "" when the field is
// not decoded.
func tagName(sf reflect.StructField) string {
	if !sf.IsExported() && !sf.Anonymous {
		return ""
	}
	tag := sf.Tag.Get("toml")
	if tag == "-" {
		return ""
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
		return "" // promoted fields; handled by fieldByKey
	}
	return sf.Name
}

// fieldByKey finds the field of struct v written as key in TOML, looking
// into embedded structs. Keys match exactly: TOML keys are case sensitive.
func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if tagName(sf) == key {
			return v.Field(i), true
		}
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct && sf.Tag.Get("toml") == "" {
			if f, ok := fieldByKey(v.Field(i), key); ok {
				return f, true
			}
		}
	}
	return reflect.Value{}, false
}

// keyNames lists the TOML keys of struct type t.
func keyNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		sf := t.Field(i)
		if name := tagName(sf); name != "" {
			out = append(out, name)
		} else if sf.Anonymous && sf.Type.Kind() == reflect.Struct && sf.Tag.Get("toml") == "" {
			out = append(out, keyNames(sf.Type)...)
		}
	}
	return out
}

// suggest returns the known key closest to name, or "" when none is close.
func suggest(t reflect.Type, name string, extra ...string) string {
	best, bestDist := "", 3
	for _, k := range append(keyNames(t), extra...) {
		if strings.EqualFold(k, name) {
			return k
		}
		lk, ln := strings.ToLower(k), strings.ToLower(name)
		if len(k) >= 3 && len(name) >= 3 && (strings.HasPrefix(lk, ln) || strings.HasPrefix(ln, lk)) && bestDist > 1 {
			best, bestDist = k, 1
			continue
		}
		if dist := editDistance(strings.ToLower(k), strings.ToLower(name)); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names what a Go type expects in TOML words.
func describe(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return `a duration such as "30s"`
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "a "), "an ") + "s"
	case reflect.Map:
		return "a table"
	}
	return t.String()
}

// tomlType names the TOML type of a decoded value.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case time.Time:
		return "a date"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a value"
}

// cleanMessage drops the "toml: line N (last key ...): " prefix of the toml
// package and the package prefix of wrapped errors: the line is in front of
// the message already.
func cleanMessage(msg string) string {
	msg = strings.TrimPrefix(msg, "toml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			msg = after
		}
	}
	for _, p := range []string{"config: ", "rules: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}
