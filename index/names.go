package index

import (
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// NameCI returns the case-folded form of a person name used for case-insensitive
// matching: upper case, trailing empty components removed.
func NameCI(pn string) string {
	pn = strings.TrimRight(strings.TrimSpace(pn), "^=")
	return strings.ToUpper(pn)
}

// NameFuzzy returns the fuzzy-match form of a person name: the components of every
// representation, upper case, accents removed, each framed by spaces (" MULLER JURGEN ").
func NameFuzzy(pn string) string {
	words := FuzzyWords(pn)
	if len(words) == 0 {
		return ""
	}
	return " " + strings.Join(words, " ") + " "
}

// FuzzyWords splits a name (or a fuzzy query) into upper-case, accent-free words.
func FuzzyWords(pn string) []string {
	s := foldAccents(strings.ToUpper(pn))
	f := strings.FieldsFunc(s, func(r rune) bool {
		return r == '^' || r == '=' || r == ' ' || r == ',' || r == '-' || r == '.' || r == '\''
	})
	return f
}

// undecomposed replaces the letters that do not decompose (safe for concurrent use).
var undecomposed = strings.NewReplacer("ß", "SS", "Ø", "O", "Æ", "AE", "Œ", "OE", "Ł", "L", "Đ", "D")

func foldAccents(s string) string {
	if isASCII(s) {
		return s // nothing to decompose or replace
	}
	// A transform.Chain keeps state: build one per call.
	out, _, err := transform.String(transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC), s)
	if err != nil {
		return s
	}
	return undecomposed.Replace(out)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
