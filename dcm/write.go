package dcm

import (
	"encoding/binary"
	"io"
)

// Meta is the content of a File Meta Information group that Lumen writes in front of
// data sets received without one (DIMSE C-STORE).
type Meta struct {
	MediaStorageSOPClassUID    string
	MediaStorageSOPInstanceUID string
	TransferSyntaxUID          string
	ImplementationClassUID     string
	ImplementationVersionName  string
	// SourceApplicationEntityTitle is the AE title that sent the data set, if known.
	SourceApplicationEntityTitle string
}

// EncodeMeta returns the 128-byte preamble, "DICM" and the File Meta Information group
// (PS3.10 §7.1) in explicit VR little endian, with its group length.
func EncodeMeta(m Meta) []byte {
	var body []byte
	body = appendExplicit(body, TagFileMetaInformationVersion, "OB", []byte{0x00, 0x01})
	body = appendExplicit(body, TagMediaStorageSOPClassUID, "UI", padUID(m.MediaStorageSOPClassUID))
	body = appendExplicit(body, TagMediaStorageSOPInstanceUID, "UI", padUID(m.MediaStorageSOPInstanceUID))
	body = appendExplicit(body, TagTransferSyntaxUID, "UI", padUID(m.TransferSyntaxUID))
	body = appendExplicit(body, TagImplementationClassUID, "UI", padUID(m.ImplementationClassUID))
	if m.ImplementationVersionName != "" {
		body = appendExplicit(body, TagImplementationVersionName, "SH", padText(m.ImplementationVersionName))
	}
	if m.SourceApplicationEntityTitle != "" {
		body = appendExplicit(body, TagSourceApplicationEntityTitle, "AE", padText(m.SourceApplicationEntityTitle))
	}
	out := make([]byte, 128, 128+4+12+len(body))
	out = append(out, "DICM"...)
	gl := make([]byte, 4)
	binary.LittleEndian.PutUint32(gl, uint32(len(body)))
	out = appendExplicit(out, TagFileMetaInformationGroupLength, "UL", gl)
	return append(out, body...)
}

// WriteMeta writes EncodeMeta(m) to w.
func WriteMeta(w io.Writer, m Meta) (int64, error) {
	n, err := w.Write(EncodeMeta(m))
	return int64(n), err
}

func padUID(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func padText(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	return b
}

func appendExplicit(b []byte, t Tag, vr string, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, t.Group())
	b = binary.LittleEndian.AppendUint16(b, t.Element())
	b = append(b, vr...)
	if longVR[vr] {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	}
	return append(b, v...)
}
