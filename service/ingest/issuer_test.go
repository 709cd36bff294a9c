package ingest_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestDefaultIssuer: an object without IssuerOfPatientID is indexed under
// Pipeline.DefaultIssuer (so that the ADT feed's patient is its patient); an object
// with one keeps it; the stored bytes are the received ones either way.
func TestDefaultIssuer(t *testing.T) {
	e := newEnv(t)
	e.p.DefaultIssuer = "HOSP"
	bare, err := gen.CTSeries(gen.Options{Seed: 31, Patient: gen.Patient{ID: "P-31", Name: "Bare^Bob"}}, 1, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	other, err := gen.CTSeries(gen.Options{Seed: 32, Patient: gen.Patient{ID: "P-31", Issuer: "OTHER", Name: "Other^Olga"}}, 1, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		obj    gen.Object
		issuer string
	}{{bare[0], "HOSP"}, {other[0], "OTHER"}} {
		if _, err := ingestBytes(e, c.obj.Data); err != nil {
			t.Fatal(err)
		}
		inst, err := e.idx.Instance(ctx, c.obj.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if inst.PatientID != "P-31" || inst.IssuerOfPatientID != c.issuer {
			t.Fatalf("indexed under (%q, %q), want (P-31, %q)", inst.PatientID, inst.IssuerOfPatientID, c.issuer)
		}
		rc, _, err := e.store.Get(ctx, inst.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, c.obj.Data) {
			t.Fatalf("the stored object of %s is not the one received", c.issuer)
		}
	}
	// Two patients: (P-31, HOSP) and (P-31, OTHER); none under an empty issuer.
	res, err := e.idx.Find(ctx, index.Query{Level: index.PatientLevel})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range res.Patients {
		keys = append(keys, p.PatientID+"/"+p.IssuerOfPatientID)
	}
	if len(keys) != 2 || keys[0] == keys[1] || (keys[0] != "P-31/HOSP" && keys[1] != "P-31/HOSP") {
		t.Fatalf("patients = %v", keys)
	}
}
