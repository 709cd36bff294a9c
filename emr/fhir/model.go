package fhir

// The FHIR R4 data types and resources Lumen emits (only the elements it fills).

// Coding is a code from a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a concept given by codings and text.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Identifier identifies something within a system.
type Identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

// Reference points at another resource, by URL or by identifier.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Meta is resource metadata.
type Meta struct {
	LastUpdated string   `json:"lastUpdated,omitempty"`
	Profile     []string `json:"profile,omitempty"`
}

// ImagingStudy is the R4 ImagingStudy resource.
type ImagingStudy struct {
	ResourceType      string        `json:"resourceType"`
	ID                string        `json:"id"`
	Meta              *Meta         `json:"meta,omitempty"`
	Identifier        []Identifier  `json:"identifier"`
	Status            string        `json:"status"`
	Modality          []Coding      `json:"modality,omitempty"`
	Subject           Reference     `json:"subject"`
	Started           string        `json:"started,omitempty"`
	Referrer          *Reference    `json:"referrer,omitempty"`
	Endpoint          []Reference   `json:"endpoint,omitempty"`
	NumberOfSeries    int           `json:"numberOfSeries"`
	NumberOfInstances int           `json:"numberOfInstances"`
	Description       string        `json:"description,omitempty"`
	Series            []StudySeries `json:"series,omitempty"`
}

// StudySeries is ImagingStudy.series.
type StudySeries struct {
	UID               string          `json:"uid"`
	Number            *int            `json:"number,omitempty"`
	Modality          Coding          `json:"modality"`
	Description       string          `json:"description,omitempty"`
	NumberOfInstances int             `json:"numberOfInstances"`
	Endpoint          []Reference     `json:"endpoint,omitempty"`
	BodySite          *Coding         `json:"bodySite,omitempty"`
	Started           string          `json:"started,omitempty"`
	Instance          []StudyInstance `json:"instance,omitempty"`
}

// StudyInstance is ImagingStudy.series.instance.
type StudyInstance struct {
	UID      string `json:"uid"`
	SOPClass Coding `json:"sopClass"`
	Number   *int   `json:"number,omitempty"`
}

// Endpoint is the R4 Endpoint resource.
type Endpoint struct {
	ResourceType    string            `json:"resourceType"`
	ID              string            `json:"id"`
	Status          string            `json:"status"`
	ConnectionType  Coding            `json:"connectionType"`
	Name            string            `json:"name,omitempty"`
	PayloadType     []CodeableConcept `json:"payloadType"`
	PayloadMimeType []string          `json:"payloadMimeType,omitempty"`
	Address         string            `json:"address"`
}

// Bundle is a searchset Bundle.
type Bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Total        int           `json:"total"`
	Link         []BundleLink  `json:"link,omitempty"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

// BundleLink is a link of a Bundle (self, next, previous).
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// BundleEntry is one resource of a Bundle.
type BundleEntry struct {
	FullURL  string       `json:"fullUrl,omitempty"`
	Resource any          `json:"resource"`
	Search   *EntrySearch `json:"search,omitempty"`
}

// EntrySearch says why an entry is in a searchset.
type EntrySearch struct {
	Mode string `json:"mode"` // match or include
}

// OperationOutcome reports an error.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one issue of an OperationOutcome.
type Issue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

// Patient is the R4 Patient resource.
type Patient struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Identifier   []Identifier  `json:"identifier,omitempty"`
	Active       *bool         `json:"active,omitempty"`
	Name         []HumanName   `json:"name,omitempty"`
	Gender       string        `json:"gender,omitempty"`
	BirthDate    string        `json:"birthDate,omitempty"`
	Link         []PatientLink `json:"link,omitempty"`
}

// HumanName is a person's name.
type HumanName struct {
	Use    string   `json:"use,omitempty"`
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Prefix []string `json:"prefix,omitempty"`
	Suffix []string `json:"suffix,omitempty"`
}

// PatientLink is Patient.link: another record of the same person (type replaced-by: the
// record that replaces this one after a merge).
type PatientLink struct {
	Other Reference `json:"other"`
	Type  string    `json:"type"`
}
