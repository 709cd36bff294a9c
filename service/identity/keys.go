package identity

import (
	"github.com/lumenpacs/lumen/hl7"
	"github.com/lumenpacs/lumen/index"
)

// Keys returns the patient keys a parsed message names, chosen by the rule
// HandleMessage applies (docs/hl7.md §2.1): target from PID-3 and, in a merge or a
// change of identifier, source from MRG-1. A key that cannot be read is zero. For the
// audit trail, which records the patient each message is about.
func (a *ADT) Keys(m *hl7.Message) (target, source index.PatientKey) {
	if m.Segment("PID") != nil {
		target, _ = a.patientKey(m, locPID3, "PID-3")
	}
	if m.Segment("MRG") != nil {
		source, _ = a.patientKey(m, locMRG1, "MRG-1")
	}
	return target, source
}
