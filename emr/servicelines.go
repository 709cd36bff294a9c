package emr

import (
	"slices"
	"strings"

	"github.com/lumenpacs/lumen/index"
)

// Service lines of a study.
const (
	Radiology  = "radiology"
	Cardiology = "cardiology"
)

// ServiceLines says which studies are cardiology; every other study is radiology. A study
// is cardiology when any rule matches. The zero value uses the defaults (DefaultServiceLines).
type ServiceLines struct {
	// Modalities (ModalitiesInStudy) that make a study cardiology.
	Modalities []string `koanf:"cardiology_modalities"`
	// SOPClassPrefixes (SOPClassesInStudy) that make a study cardiology.
	SOPClassPrefixes []string `koanf:"cardiology_sop_class_prefixes"`
	// BodyParts (BodyPartExamined of any series) that make a study cardiology.
	BodyParts []string `koanf:"cardiology_body_parts"`
	// Keywords that make a study cardiology when its StudyDescription contains one
	// (case-insensitive, whole words): echocardiography is US by modality.
	Keywords []string `koanf:"cardiology_keywords"`
}

// DefaultServiceLines: XA, IVUS, IVOCT, ECG, HD and EPS studies, every waveform SOP class
// (ECG, hemodynamic, electrophysiology: 1.2.840.10008.5.1.4.1.1.9.), studies of the heart
// and studies described as echo, TTE, TEE, cardiac or coronary are cardiology.
var DefaultServiceLines = ServiceLines{
	Modalities:       []string{"XA", "IVUS", "IVOCT", "ECG", "HD", "EPS"},
	SOPClassPrefixes: []string{"1.2.840.10008.5.1.4.1.1.9."},
	BodyParts:        []string{"HEART", "CORONARYARTERY"},
	Keywords:         []string{"ECHO", "ECHOCARDIOGRAPHY", "ECHOCARDIOGRAM", "TTE", "TEE", "CARDIAC", "CORONARY", "CARDIO"},
}

func (l ServiceLines) withDefaults() ServiceLines {
	if l.Modalities == nil && l.SOPClassPrefixes == nil && l.BodyParts == nil && l.Keywords == nil {
		return DefaultServiceLines
	}
	return l
}

// class is the cardiology service line as an index study class: the index sorts,
// pages and counts the chart's studies by it.
func (l ServiceLines) class() index.StudyClass {
	l = l.withDefaults()
	return index.StudyClass{Modalities: l.Modalities, SOPClassPrefixes: l.SOPClassPrefixes, BodyParts: l.BodyParts, Keywords: l.Keywords}
}

// Classify returns the service line of a study whose series have the given body parts:
// the rules of index.StudyClass.Matches (ASCII case-insensitive codes, whole words of the
// description), which the index applies to the chart's queries.
func (l ServiceLines) Classify(s *index.Study, bodyParts []string) string {
	c := l.class()
	if c.Matches(s, bodyParts) {
		return Cardiology
	}
	return Radiology
}

// waveformPrefix is the SOP class root of every waveform object (PS3.4 Annex B).
const waveformPrefix = "1.2.840.10008.5.1.4.1.1.9."

// cineClasses are SOP classes whose instances are usually cine loops.
var cineClasses = []string{
	"1.2.840.10008.5.1.4.1.1.12.1",   // X-Ray Angiographic Image
	"1.2.840.10008.5.1.4.1.1.12.1.1", // Enhanced XA
	"1.2.840.10008.5.1.4.1.1.12.2",   // X-Ray Radiofluoroscopic Image
	"1.2.840.10008.5.1.4.1.1.3.1",    // Ultrasound Multi-frame Image
}

// kinds says what a study holds for the chart: "ecg" (waveforms), "cine" (multi-frame
// angiography or ultrasound), "report" (SR or documents only), "images".
func kinds(s *index.Study) []string {
	var out []string
	if slices.ContainsFunc(s.SOPClassesInStudy, func(c string) bool { return strings.HasPrefix(c, waveformPrefix) }) {
		out = append(out, "ecg")
	}
	if slices.ContainsFunc(s.SOPClassesInStudy, func(c string) bool { return slices.Contains(cineClasses, c) }) {
		out = append(out, "cine")
	}
	if len(out) == 0 {
		out = append(out, "images")
		if !slices.ContainsFunc(s.ModalitiesInStudy, func(m string) bool {
			return !slices.Contains([]string{"SR", "DOC", "KO", "PR"}, m)
		}) && len(s.ModalitiesInStudy) > 0 {
			out[0] = "report"
		}
	}
	return out
}
