package index

import (
	"slices"
	"strings"
)

// StudyClass is a set of rules that puts studies in a class (the EMR's cardiology
// service line, for instance): a study is in the class when any rule matches it. The
// index matches classes in its queries (Query.Class), so that lists of studies sorted
// by class are paged and counted by the index; Matches is the same rule in Go.
// Comparisons are ASCII case-insensitive: the values are code strings and words.
type StudyClass struct {
	// Modalities: any ModalitiesInStudy value equal to one.
	Modalities []string
	// SOPClassPrefixes: any SOPClassesInStudy value starting with one (case-sensitive).
	SOPClassPrefixes []string
	// BodyParts: the BodyPartExamined of any series of the study equal to one.
	BodyParts []string
	// Keywords: any word of StudyDescription equal to one. Words are the runs of ASCII
	// letters and digits (DescriptionWords); a keyword with other characters never
	// matches.
	Keywords []string
}

// Matches reports whether a study, whose series have the given body parts, is in the
// class.
func (c *StudyClass) Matches(s *Study, bodyParts []string) bool {
	mods, prefixes, parts, kw := c.Rules() // normalised once, not per value
	for _, m := range s.ModalitiesInStudy {
		if slices.Contains(mods, ASCIIUpper(m)) {
			return true
		}
	}
	for _, sc := range s.SOPClassesInStudy {
		for _, p := range prefixes {
			if strings.HasPrefix(sc, p) {
				return true
			}
		}
	}
	for _, b := range bodyParts {
		if slices.Contains(parts, ASCIIUpper(b)) {
			return true
		}
	}
	if len(kw) > 0 {
		words := DescriptionWords(s.StudyDescription)
		for _, k := range kw {
			if strings.Contains(words, " "+k+" ") {
				return true
			}
		}
	}
	return false
}

// The rules as the index matches them: upper case, without empty values (and, for
// keywords, without values that cannot be words).
func (c *StudyClass) modalities() []string { return upperNonEmpty(c.Modalities) }
func (c *StudyClass) bodyParts() []string  { return upperNonEmpty(c.BodyParts) }

func (c *StudyClass) prefixes() []string {
	var out []string
	for _, p := range c.SOPClassPrefixes {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *StudyClass) keywords() []string {
	var out []string
	for _, k := range upperNonEmpty(c.Keywords) {
		if strings.IndexFunc(k, func(r rune) bool { return !isWordByte(r) }) < 0 {
			out = append(out, k)
		}
	}
	return out
}

// Rules returns the class's rules normalised as the index matches them: modalities and
// body parts upper case, keywords upper case and made of word characters only, empty
// values dropped.
func (c *StudyClass) Rules() (modalities, sopClassPrefixes, bodyParts, keywords []string) {
	return c.modalities(), c.prefixes(), c.bodyParts(), c.keywords()
}

func upperNonEmpty(v []string) []string {
	var out []string
	for _, s := range v {
		if s = ASCIIUpper(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ASCIIUpper upper-cases the ASCII letters of s and leaves every other byte alone (as
// SQLite's upper() does), so that Go and SQL compare code strings alike.
func ASCIIUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func isWordByte(r rune) bool { return r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' }

// DescriptionWords returns the words of a description as the class keywords match them:
// ASCII letters upper-cased, every run of characters other than ASCII letters and digits
// a separator, each word framed by spaces (" ECHO CARDIOGRAPHY TTE "); " " when there
// are none.
func DescriptionWords(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(' ')
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c = c - 'a' + 'A'
		}
		if isWordByte(rune(c)) {
			b.WriteByte(c)
			inWord = true
			continue
		}
		if inWord {
			b.WriteByte(' ')
			inWord = false
		}
	}
	if inWord {
		b.WriteByte(' ')
	}
	return b.String()
}
