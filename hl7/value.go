package hl7

import "strings"

type level uint8

const (
	levelField level = iota
	levelRep
	levelComponent
	levelSub
)

// Value is one position of a message: a field, a repetition, a component or a
// subcomponent. The zero Value is an absent position.
//
// HL7 tells three states apart. A position the message does not reach (Present false)
// and an empty one (Present true, Raw "") both mean "no value": an update leaves the
// receiver's data as it is. The explicit null `""` (Null true) means "delete the
// value". String returns "" for all three.
type Value struct {
	m       *Message
	raw     string
	present bool
	level   level
	literal bool // MSH-1 and MSH-2: never split nor unescaped
}

// Present reports whether the message reaches this position, even with an empty value.
func (v Value) Present() bool { return v.present }

// Empty reports whether the position holds nothing: absent, or present and empty. The
// null `""` is not empty.
func (v Value) Empty() bool { return v.raw == "" }

// Null reports whether the position holds the explicit null `""` (see Null).
func (v Value) Null() bool { return v.raw == Null && !v.literal }

// Raw returns the position's text as the message holds it: escaped, with the
// delimiters of the levels below it.
func (v Value) Raw() string { return v.raw }

// String returns the value unescaped, in UTF-8. For a position with parts below it (a
// field with components, a repetition with components), it is the value of its first
// subcomponent of its first component of its first repetition, as a terser reads it:
// Get("PID-5").String() is the family name. A null reads "".
func (v Value) String() string {
	if v.literal || v.m == nil {
		return v.raw
	}
	leaf := v.raw
	d := v.m.delims
	if v.level <= levelField {
		leaf = cut(leaf, d.Repetition)
	}
	if v.level <= levelRep {
		leaf = cut(leaf, d.Component)
	}
	if v.level <= levelComponent {
		leaf = cut(leaf, d.Subcomponent)
	}
	if leaf == Null {
		return ""
	}
	return unescape(d, v.m.cs, leaf)
}

func cut(s string, sep byte) string {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i]
	}
	return s
}

// part returns part n (1-based) of v's text cut at sep, as a Value of level l.
func (v Value) part(sep byte, n int, l level) Value {
	if !v.present || n < 1 {
		return Value{}
	}
	s := v.raw
	for ; n > 1; n-- {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			return Value{}
		}
		s = s[i+1:]
	}
	return Value{m: v.m, raw: cut(s, sep), present: true, level: l}
}

// count returns the number of parts of v's text cut at sep; 0 when it is empty.
func (v Value) count(sep byte) int {
	if v.raw == "" {
		return 0
	}
	return strings.Count(v.raw, string(sep)) + 1
}

// Rep returns repetition n (from 1) of a field. On a repetition, component or
// subcomponent, Rep(1) is the value itself.
func (v Value) Rep(n int) Value {
	if !v.present {
		return Value{}
	}
	if v.literal || v.level > levelField {
		if n == 1 {
			return v
		}
		return Value{}
	}
	return v.part(v.m.delims.Repetition, n, levelRep)
}

// Component returns component n (from 1) of a repetition; of a field, of its first
// repetition. On a component or subcomponent, Component(1) is the value itself.
func (v Value) Component(n int) Value {
	if !v.present {
		return Value{}
	}
	switch {
	case v.literal || v.level > levelRep:
		if n == 1 {
			return v
		}
		return Value{}
	case v.level == levelField:
		v = v.Rep(1)
	}
	return v.part(v.m.delims.Component, n, levelComponent)
}

// Sub returns subcomponent n (from 1) of a component; of a field or repetition, of its
// first component. On a subcomponent, Sub(1) is the value itself.
func (v Value) Sub(n int) Value {
	if !v.present {
		return Value{}
	}
	switch {
	case v.literal || v.level > levelComponent:
		if n == 1 {
			return v
		}
		return Value{}
	case v.level < levelComponent:
		v = v.Component(1)
	}
	return v.part(v.m.delims.Subcomponent, n, levelSub)
}

// NumReps returns the number of repetitions of a field (0 when it is empty).
func (v Value) NumReps() int {
	if !v.present {
		return 0
	}
	if v.literal || v.level > levelField {
		return min(1, len(v.raw))
	}
	return v.count(v.m.delims.Repetition)
}

// NumComponents returns the number of components of a repetition, or of a field's
// first repetition (0 when it is empty).
func (v Value) NumComponents() int {
	if !v.present {
		return 0
	}
	switch {
	case v.literal || v.level > levelRep:
		return min(1, len(v.raw))
	case v.level == levelField:
		v = v.Rep(1)
	}
	return v.count(v.m.delims.Component)
}

// NumSubs returns the number of subcomponents of a component, or of the first
// component of a field or repetition (0 when it is empty).
func (v Value) NumSubs() int {
	if !v.present {
		return 0
	}
	switch {
	case v.literal || v.level > levelComponent:
		return min(1, len(v.raw))
	case v.level < levelComponent:
		v = v.Component(1)
	}
	return v.count(v.m.delims.Subcomponent)
}
