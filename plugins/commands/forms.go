package commands

import (
	"encoding/xml"
	"fmt"
	"strings"
	"unicode"

	"crier/plugins"
)

// Namespaces of XEP-0050 and XEP-0004.
const (
	nsCommands = "http://jabber.org/protocol/commands"
	nsData     = "jabber:x:data"
)

// cmdName is the iq child the plugin answers.
var cmdName = xml.Name{Space: nsCommands, Local: "command"}

// xCommand is an XEP-0050 <command/>.
type xCommand struct {
	XMLName   xml.Name  `xml:"http://jabber.org/protocol/commands command"`
	Node      string    `xml:"node,attr"`
	SessionID string    `xml:"sessionid,attr,omitempty"`
	Action    string    `xml:"action,attr,omitempty"`
	Status    string    `xml:"status,attr,omitempty"`
	Actions   *xActions `xml:"actions,omitempty"`
	Notes     []xNote   `xml:"note"`
	Form      *xForm    `xml:"jabber:x:data x,omitempty"`
}

// xActions are the actions a stage allows; Execute is the default one.
type xActions struct {
	Execute  string    `xml:"execute,attr,omitempty"`
	Prev     *struct{} `xml:"prev,omitempty"`
	Next     *struct{} `xml:"next,omitempty"`
	Complete *struct{} `xml:"complete,omitempty"`
}

// xNote is an XEP-0050 note: info, warn or error.
type xNote struct {
	Type string `xml:"type,attr"`
	Text string `xml:",chardata"`
}

// xForm is an XEP-0004 data form.
type xForm struct {
	XMLName      xml.Name   `xml:"jabber:x:data x"`
	Type         string     `xml:"type,attr"`
	Title        string     `xml:"title,omitempty"`
	Instructions []string   `xml:"instructions,omitempty"`
	Fields       []xField   `xml:"field"`
	Reported     *xReported `xml:"reported,omitempty"`
	Items        []xItem    `xml:"item"`
}

type xField struct {
	Var      string    `xml:"var,attr,omitempty"`
	Type     string    `xml:"type,attr,omitempty"`
	Label    string    `xml:"label,attr,omitempty"`
	Desc     string    `xml:"desc,omitempty"`
	Required *struct{} `xml:"required,omitempty"`
	Values   []string  `xml:"value"`
	Options  []xOption `xml:"option"`
}

type xOption struct {
	Label string `xml:"label,attr,omitempty"`
	Value string `xml:"value"`
}

type xReported struct {
	Fields []xField `xml:"field"`
}

type xItem struct {
	Fields []xField `xml:"field"`
}

func noteType(t plugins.NoteType) string {
	switch t {
	case plugins.NoteWarn:
		return "warn"
	case plugins.NoteError:
		return "error"
	}
	return "info"
}

// stages returns the command's stages as argument lists: one stage with
// every argument unless Stages is set.
func stages(cmd *plugins.Command) [][]plugins.Arg {
	if len(cmd.Stages) == 0 {
		return [][]plugins.Arg{cmd.Args}
	}
	out := make([][]plugins.Arg, 0, len(cmd.Stages))
	for _, names := range cmd.Stages {
		var st []plugins.Arg
		for _, n := range names {
			for _, a := range cmd.Args {
				if a.Name == n {
					st = append(st, a)
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// fieldType is the data form field type of an argument.
func fieldType(a *plugins.Arg) string {
	switch a.Kind {
	case plugins.ArgBool:
		return "boolean"
	case plugins.ArgList:
		return "list-single"
	case plugins.ArgJID:
		return "jid-single"
	case plugins.ArgText:
		if a.Rest {
			return "text-multi"
		}
	}
	return "text-single"
}

func label(a *plugins.Arg) string {
	if a.Label != "" {
		return a.Label
	}
	r := []rune(a.Name)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// argField is the form field of an argument with its current value.
func argField(a *plugins.Arg, vals map[string]string) xField {
	f := xField{Var: a.Name, Type: fieldType(a), Label: label(a), Desc: a.Desc}
	switch a.Kind {
	case plugins.ArgDuration:
		f.Desc = strings.TrimSpace(f.Desc + " (a duration such as 10m or 2h)")
	case plugins.ArgInt:
		f.Desc = strings.TrimSpace(f.Desc + " (a whole number)")
	}
	if a.Required {
		f.Required = &struct{}{}
	}
	v, ok := vals[a.Name]
	if !ok {
		v = a.Default
	}
	if v != "" {
		if f.Type == "text-multi" {
			f.Values = strings.Split(v, "\n")
		} else {
			f.Values = []string{v}
		}
	}
	for _, o := range a.Options {
		f.Options = append(f.Options, xOption{Label: o, Value: o})
	}
	return f
}

// confirmField is the boolean a destructive command's last stage adds.
const confirmField = "confirm"

// stageForm is the form of one stage; confirm adds the confirmation box.
func stageForm(cmd *plugins.Command, st []plugins.Arg, vals map[string]string, confirm bool) *xForm {
	f := &xForm{Type: "form", Title: cmd.Name, Instructions: []string{cmd.Summary}}
	for i := range st {
		f.Fields = append(f.Fields, argField(&st[i], vals))
	}
	if confirm {
		f.Fields = append(f.Fields, xField{Var: confirmField, Type: "boolean", Label: "Confirm",
			Desc: "This command is destructive: check to run it.", Values: []string{"false"}})
	}
	return f
}

// stageActions are the actions of stage i of n.
func stageActions(i, n int) *xActions {
	a := &xActions{}
	if i > 0 {
		a.Prev = &struct{}{}
	}
	if i < n-1 {
		a.Execute, a.Next = "next", &struct{}{}
	} else {
		a.Execute, a.Complete = "complete", &struct{}{}
	}
	return a
}

// tableForm is a result table as a form of type result.
func tableForm(title string, t *plugins.Table) *xForm {
	f := &xForm{Type: "result", Title: title, Reported: &xReported{}}
	vars := make([]string, len(t.Columns))
	seen := map[string]bool{}
	for i, c := range t.Columns {
		v := fieldVar(c)
		for seen[v] {
			v += "_"
		}
		seen[v], vars[i] = true, v
		f.Reported.Fields = append(f.Reported.Fields, xField{Var: v, Label: c, Type: "text-single"})
	}
	for _, r := range t.Rows {
		it := xItem{}
		for i, v := range vars {
			cell := ""
			if i < len(r) {
				cell = r[i]
			}
			it.Fields = append(it.Fields, xField{Var: v, Values: []string{cell}})
		}
		f.Items = append(f.Items, it)
	}
	return f
}

// fieldVar makes a column name a field var: "In chain" -> "in_chain".
func fieldVar(c string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(c) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "column"
	}
	return b.String()
}

// formError is a refused form: structural (bad-request, <bad-payload/>)
// or a value that fails validation (not-acceptable).
type formError struct {
	structural bool
	reason     string
	msg        string
}

func (e *formError) Error() string { return e.msg }

// readForm reads a submitted form's values for the arguments of one stage
// (or of every stage, for a one-shot submission) into vals. confirmed
// reports the confirm box; allowConfirm admits it.
func readForm(f *xForm, st []plugins.Arg, vals map[string]string, allowConfirm bool, max int) (confirmed bool, err error) {
	structural := func(format string, a ...any) error {
		return &formError{structural: true, reason: reasonBadForm, msg: fmt.Sprintf(format, a...)}
	}
	got := map[string]string{}
	if f != nil {
		if f.Type != "submit" && f.Type != "" {
			return false, structural("the form's type is %q, not submit", f.Type)
		}
		for _, fd := range f.Fields {
			if fd.Var == "" {
				return false, structural("a field has no var")
			}
			if _, dup := got[fd.Var]; dup {
				return false, structural("field %q is given twice", fd.Var)
			}
			if fd.Var == "FORM_TYPE" {
				continue
			}
			var a *plugins.Arg
			for i := range st {
				if st[i].Name == fd.Var {
					a = &st[i]
				}
			}
			switch {
			case fd.Var == confirmField && allowConfirm:
			case a == nil:
				return false, structural("unknown field %q", fd.Var)
			case len(fd.Values) > 1 && fieldType(a) != "text-multi":
				return false, structural("field %q has %d values; it takes one", fd.Var, len(fd.Values))
			}
			got[fd.Var] = strings.Join(fd.Values, "\n")
		}
	}
	if allowConfirm {
		if v, ok := got[confirmField]; ok {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "1", "true":
				confirmed = true
			case "0", "false", "":
			default:
				return false, &formError{reason: reasonBadArgs, msg: fmt.Sprintf("confirm: %q is not a boolean", clip(v, 40))}
			}
		}
	}
	for i := range st {
		a := &st[i]
		v, ok := got[a.Name]
		if !ok || strings.TrimSpace(v) == "" {
			if a.Required {
				return false, &formError{reason: reasonBadArgs, msg: fmt.Sprintf("missing required field %s", a.Name)}
			}
			if a.Default != "" {
				vals[a.Name] = a.Default
			} else {
				delete(vals, a.Name)
			}
			continue
		}
		nv, err := checkValue(a, v, max)
		if err != nil {
			reason := reasonBadArgs
			if ae, ok := err.(*argError); ok {
				reason = ae.reason
			}
			return false, &formError{reason: reason, msg: err.Error()}
		}
		vals[a.Name] = nv
	}
	return confirmed, nil
}
