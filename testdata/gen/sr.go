package gen

import (
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Default texts of BasicTextSR.
const (
	defaultFindings   = "Synthetic test report. The phantom shows no abnormality. No real patient data."
	defaultImpression = "Normal synthetic study."
)

// BasicTextSR generates one Basic Text SR object (Modality SR): a root
// CONTAINER "Diagnostic Imaging Report" (LOINC 18748-4) with
// ContinuityOfContent SEPARATE containing two TEXT items, "Finding"
// (DCM 121071) and "Impression" (DCM 121073), taken from Options.Findings
// and Options.Impression; CompletionFlag COMPLETE, VerificationFlag
// UNVERIFIED. The object is named Dir/sr-report.dcm.
func BasicTextSR(opt Options) (Object, error) {
	r := resolve(opt, kindSR, "SR", "Synthetic report", "")
	if r.Findings == "" {
		r.Findings = defaultFindings
	}
	if r.Impression == "" {
		r.Impression = defaultImpression
	}
	sop := r.instanceUID(1)
	b := &builder{}
	b.common(r, BasicTextSRStorage, sop, "SR", 1)

	// SR Document Series and General.
	b.seq(tag.ReferencedPerformedProcedureStepSequence)
	b.seq(tag.PerformedProcedureCodeSequence)
	b.str(tag.CompletionFlag, "COMPLETE")
	b.str(tag.VerificationFlag, "UNVERIFIED")

	// SR Document Content: the root content item.
	b.str(tag.ValueType, "CONTAINER")
	b.seq(tag.ConceptNameCodeSequence, b.code("18748-4", "LN", "Diagnostic Imaging Report"))
	b.str(tag.ContinuityOfContent, "SEPARATE")
	text := func(code, meaning, value string) []*dicom.Element {
		return b.item(func(c *builder) {
			c.str(tag.RelationshipType, "CONTAINS")
			c.str(tag.ValueType, "TEXT")
			c.seq(tag.ConceptNameCodeSequence, c.code(code, "DCM", meaning))
			c.str(tag.TextValue, value)
		})
	}
	b.seq(tag.ContentSequence,
		text("121071", "Finding", r.Findings),
		text("121073", "Impression", r.Impression),
	)

	data, err := b.encode()
	if err != nil {
		return Object{}, err
	}
	return r.object(r.Dir+"/sr-report.dcm", sop, BasicTextSRStorage, "SR", 1, 0, data), nil
}
