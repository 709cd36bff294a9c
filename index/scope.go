package index

import (
	"context"
	"strings"
)

// PatientKey identifies a patient: PatientID and IssuerOfPatientID, compared exactly
// (an empty issuer matches only an empty issuer).
type PatientKey struct {
	ID, Issuer string
}

// Scope restricts what a caller may see, whatever its query's filters say: the studies
// of one patient, or one study. It travels in the request context (WithScope), so every
// surface that queries the index on a caller's behalf is restricted in the index query
// itself, not by filtering answers afterwards.
type Scope struct {
	// Patient, when set, admits only this patient's records.
	Patient *PatientKey
	// StudyInstanceUID, when set, admits only this study's records (and its patient).
	StudyInstanceUID string
}

type scopeKey struct{}

// WithScope returns a context whose index queries are restricted to s, in addition to
// any scope ctx already has.
func WithScope(ctx context.Context, s Scope) context.Context {
	if s.Patient != nil { // stored trimmed, as ingest stores them
		s.Patient = &PatientKey{ID: strings.TrimSpace(s.Patient.ID), Issuer: strings.TrimSpace(s.Patient.Issuer)}
	}
	return context.WithValue(ctx, scopeKey{}, append(append([]Scope(nil), Scopes(ctx)...), s))
}

// Scopes returns the scopes of ctx; a record is visible only when every one admits it.
func Scopes(ctx context.Context) []Scope {
	s, _ := ctx.Value(scopeKey{}).([]Scope)
	return s
}

// Unscoped returns a context whose index reads ignore the scopes of ctx. It is for the
// archive's internal bookkeeping only, whose answers never reach the caller: settling
// the outcome of its own write, or comparing an arriving object with the stored copy
// under the same UID (then the caller's scope is checked on the stored record before
// anything is answered). Never use it to answer a caller's query.
func Unscoped(ctx context.Context) context.Context {
	return context.WithValue(ctx, scopeKey{}, []Scope(nil))
}

// Admits reports whether a study of the given patient is within every scope of ctx.
func Admits(ctx context.Context, s *Study) bool {
	for _, sc := range Scopes(ctx) {
		if sc.Patient != nil && (sc.Patient.ID != s.PatientID || sc.Patient.Issuer != s.IssuerOfPatientID) {
			return false
		}
		if sc.StudyInstanceUID != "" && sc.StudyInstanceUID != s.StudyInstanceUID {
			return false
		}
	}
	return true
}
