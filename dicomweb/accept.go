package dicomweb

import (
	"mime"
	"sort"
	"strconv"
	"strings"
)

// mediaRange is one entry of an Accept header (PS3.18 8.7.3).
type mediaRange struct {
	typ    string            // "multipart/related", "application/dicom", "*/*"...
	params map[string]string // lower-case names: type, transfer-syntax...
	q      float64
}

// parseAccept splits an Accept header into media ranges, best first (stable for
// equal q). An empty header accepts anything.
func parseAccept(h string) []mediaRange {
	if strings.TrimSpace(h) == "" {
		return []mediaRange{{typ: "*/*", q: 1}}
	}
	var out []mediaRange
	for _, part := range splitTopLevel(h) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		typ, params, err := mime.ParseMediaType(part)
		if err != nil {
			// Lenient with what clients send: a bare type before the first ';'.
			typ = strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
			params = map[string]string{}
		}
		m := mediaRange{typ: typ, params: params, q: 1}
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				m.q = f
			}
		}
		if m.q > 0 {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].q > out[j].q })
	return out
}

// splitTopLevel splits on commas outside quoted strings.
func splitTopLevel(s string) []string {
	var out []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// Transfer syntax UIDs used on the web.
const (
	tsImplicitLE = "1.2.840.10008.1.2"
	tsExplicitLE = "1.2.840.10008.1.2.1"
	tsDeflated   = "1.2.840.10008.1.2.1.99"
	tsExplicitBE = "1.2.840.10008.1.2.2"
)

// native reports whether ts stores pixel data uncompressed.
func native(ts string) bool {
	switch ts {
	case tsImplicitLE, tsExplicitLE, tsDeflated, tsExplicitBE:
		return true
	}
	return false
}

// frameMediaType is the media type of one compressed frame in ts (PS3.18 Table 8.7.3-2),
// "" when there is none but application/octet-stream.
func frameMediaType(ts string) string {
	switch ts {
	case "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70":
		return "image/jpeg"
	case "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81":
		return "image/jls"
	case "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91":
		return "image/jp2"
	case "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93":
		return "image/jpx"
	case "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203":
		return "image/jphc"
	case "1.2.840.10008.1.2.5":
		return "image/dicom-rle"
	case "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101":
		return "video/mpeg"
	case "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.106":
		return "video/mp4"
	case "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108":
		return "video/H265"
	}
	return ""
}

// wants reports whether the media range accepts the given type (with wildcards).
func (m mediaRange) accepts(typ string) bool {
	if m.typ == "*/*" || m.typ == typ {
		return true
	}
	if strings.HasSuffix(m.typ, "/*") {
		return strings.HasPrefix(typ, strings.TrimSuffix(m.typ, "*"))
	}
	return false
}
