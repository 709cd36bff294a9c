package tools

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// KORef is one instance a rejection note references.
type KORef struct{ Study, Series, Class, SOP string }

// RejectionNote describes an IHE IOCM rejection note: a Key Object Selection Document
// (in a series of its own, SOP+".1") titled (Code, DCM, Meaning), in Study of the
// patient (PatientID, Issuer), whose Current Requested Procedure Evidence Sequence
// references Refs (grouped by study and series, in order).
type RejectionNote struct {
	SOP, Study, PatientID, Issuer, Code, Meaning string
	Refs                                         []KORef
}

// DCMTKRejectionNote writes n as a DCMTK text dump and turns it into a PS3.10 file with
// DCMTK's dump2dcm, whose path it returns: the rejection notes of the tests are made by
// the reference implementation, not by Lumen's encoder.
func DCMTKRejectionNote(t testing.TB, n RejectionNote) string {
	t.Helper()
	bin := DCMTK(t, "dump2dcm")
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("(0008,0016) UI [1.2.840.10008.5.1.4.1.1.88.59]") // Key Object Selection Document Storage
	line("(0008,0018) UI [%s]", n.SOP)
	line("(0008,0023) DA [20260101]")
	line("(0008,0033) TM [120000]")
	line("(0008,0060) CS [KO]")
	line("(0010,0010) PN []")
	line("(0010,0020) LO [%s]", n.PatientID)
	if n.Issuer != "" {
		line("(0010,0021) LO [%s]", n.Issuer)
	}
	line("(0020,000d) UI [%s]", n.Study)
	line("(0020,000e) UI [%s.1]", n.SOP)
	line("(0020,0011) IS [99]")
	line("(0020,0013) IS [1]")
	line("(0040,a040) CS [CONTAINER]")
	line("(0040,a043) SQ (Sequence with undefined length)")
	line("  (fffe,e000) na (Item with undefined length)")
	line("    (0008,0100) SH [%s]", n.Code)
	line("    (0008,0102) SH [DCM]")
	line("    (0008,0104) LO [%s]", n.Meaning)
	line("  (fffe,e00d) na (ItemDelimitationItem)")
	line("(fffe,e0dd) na (SequenceDelimitationItem)")
	line("(0040,a050) CS [SEPARATE]")
	line("(0040,a375) SQ (Sequence with undefined length)")
	refs := n.Refs
	for i := 0; i < len(refs); {
		st := refs[i].Study
		line("  (fffe,e000) na (Item with undefined length)")
		line("    (0008,1115) SQ (Sequence with undefined length)")
		for i < len(refs) && refs[i].Study == st {
			se := refs[i].Series
			line("      (fffe,e000) na (Item with undefined length)")
			line("        (0008,1199) SQ (Sequence with undefined length)")
			for ; i < len(refs) && refs[i].Study == st && refs[i].Series == se; i++ {
				line("          (fffe,e000) na (Item with undefined length)")
				line("            (0008,1150) UI [%s]", refs[i].Class)
				line("            (0008,1155) UI [%s]", refs[i].SOP)
				line("          (fffe,e00d) na (ItemDelimitationItem)")
			}
			line("        (fffe,e0dd) na (SequenceDelimitationItem)")
			line("        (0020,000e) UI [%s]", se)
			line("      (fffe,e00d) na (ItemDelimitationItem)")
		}
		line("    (fffe,e0dd) na (SequenceDelimitationItem)")
		line("    (0020,000d) UI [%s]", st)
		line("  (fffe,e00d) na (ItemDelimitationItem)")
	}
	line("(fffe,e0dd) na (SequenceDelimitationItem)")
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "ko.txt"), filepath.Join(dir, "ko.dcm")
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "+te", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("dump2dcm: %v\n%s\n%s", err, out, b.String())
	}
	return dst
}
