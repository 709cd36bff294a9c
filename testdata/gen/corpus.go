package gen

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Corpus patients. Both are invented; PatientUTF8's name exercises
// SpecificCharacterSet ISO_IR 192.
var (
	// PatientUTF8 is the corpus patient with a non-ASCII (UTF-8) name.
	PatientUTF8 = Patient{ID: "LUMEN-P0001", Issuer: "LUMEN-TEST", Name: "Müller^Jürgen", BirthDate: "19580417", Sex: "M"}
	// PatientASCII is the corpus patient with a plain ASCII name.
	PatientASCII = Patient{ID: "LUMEN-P0002", Issuer: "LUMEN-TEST", Name: "Synthetic^Anna", BirthDate: "19820923", Sex: "F"}
)

// Corpus generates the standard test corpus for seed: 2 patients, 4 studies,
// 7 series and 39 instances, about 0.6 MB in all.
//
//	patient LUMEN-P0001 "Müller^Jürgen" (UTF-8)
//	  study 1 "CT Thorax", accession LUM0001
//	    series 1 CT  20 slices 64×64            patient1/study1/series1-ct/ct-NNN.dcm
//	    series 2 SR   1 Basic Text SR           patient1/study1/series2-sr/sr-report.dcm
//	  study 2 "MR Schädel" (UTF-8), accession LUM0002
//	    series 3 MR  10 slices 64×64 T1         patient1/study2/series3-mr/mr-NNN.dcm
//	    series 4 MR   5 slices 64×64 T2         patient1/study2/series4-mr/mr-NNN.dcm
//	patient LUMEN-P0002 "Synthetic^Anna" (ASCII)
//	  study 3 "Coronary angiography", accession LUM0003
//	    series 5 XA   1 cine, 10 frames 64×64   patient2/study3/series5-xa/xa-cine.dcm
//	    series 6 ECG  1 12-lead ECG             patient2/study3/series6-ecg/ecg-12lead.dcm
//	  study 4 "Echocardiography", accession LUM0004
//	    series 7 US   1 RGB cine, 8 frames 48×64 patient2/study4/series7-us/us-cine.dcm
//
// Series numbers are unique across the whole corpus. The seed changes the
// UIDs and the noise, not the structure.
func Corpus(seed uint64) ([]Object, error) {
	study := func(p Patient, pn, sn int, date, tm, desc string) Options {
		return Options{
			Seed:             seed,
			Patient:          p,
			StudyID:          fmt.Sprintf("%d", 1000+sn),
			AccessionNumber:  fmt.Sprintf("LUM%04d", sn),
			StudyDate:        date,
			StudyTime:        tm,
			StudyDescription: desc,
			Dir:              fmt.Sprintf("patient%d/study%d", pn, sn),
		}
	}
	series := func(o Options, num int, modality string) Options {
		o.SeriesNumber = num
		o.Dir = fmt.Sprintf("%s/series%d-%s", o.Dir, num, strings.ToLower(modality))
		return o
	}
	ct := study(PatientUTF8, 1, 1, "20240312", "081500", "CT Thorax")
	mr := study(PatientUTF8, 1, 2, "20240520", "143000", "MR Schädel")
	xa := study(PatientASCII, 2, 3, "20240611", "101000", "Coronary angiography")
	us := study(PatientASCII, 2, 4, "20240702", "111500", "Echocardiography")

	var out []Object
	add := func(objs []Object, err error) error {
		out = append(out, objs...)
		return err
	}
	one := func(o Object, err error) ([]Object, error) { return []Object{o}, err }

	mrT1 := series(mr, 3, "MR")
	mrT1.Contrast = "T1"
	mrT2 := series(mr, 4, "MR")
	mrT2.Contrast = "T2"
	srOpt := series(ct, 2, "SR")
	srOpt.Findings = "Synthetic CT of the thorax phantom: both lungs aerated, no focal lesion. Contrast in the aorta."
	srOpt.Impression = "No abnormality in the synthetic phantom (test data, not a real patient)."

	err := errors.Join(
		add(CTSeries(series(ct, 1, "CT"), 20, 64, 64)),
		add(one(BasicTextSR(srOpt))),
		add(MRSeries(mrT1, 10, 64, 64)),
		add(MRSeries(mrT2, 5, 64, 64)),
		add(one(XACine(series(xa, 5, "XA"), 10, 64, 64))),
		add(one(ECG12Lead(series(xa, 6, "ECG")))),
		add(one(USCine(series(us, 7, "US"), 8, 48, 64))),
	)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WriteCorpus writes each Object.Data to dir/Object.Name (slash-separated,
// relative, without ".."), creating directories as needed.
func WriteCorpus(dir string, objs []Object) error {
	for _, o := range objs {
		name := filepath.FromSlash(o.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("gen: object name %q is not a local relative path", o.Name)
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		if err := os.WriteFile(path, o.Data, 0o644); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
	}
	return nil
}

// SamplesModule is the module (path@version) whose testdata directory holds
// the real sample DICOM files described in testdata/SOURCES.md.
const SamplesModule = "github.com/suyashkumar/dicom@v1.1.0"

// ModuleSamplesDir returns the testdata directory of SamplesModule in the
// Go module cache (GOMODCACHE from the environment, else `go env
// GOMODCACHE`, else GOPATH/pkg/mod), which holds 1.dcm–6.dcm. It returns an
// error if the directory does not exist, e.g. when the module has not been
// downloaded (`go mod download github.com/suyashkumar/dicom`).
func ModuleSamplesDir() (string, error) {
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			cache = strings.TrimSpace(string(out))
		}
	}
	if cache == "" {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("gen: cannot locate the module cache: %w", err)
			}
			gopath = filepath.Join(home, "go")
		}
		// GOPATH may be a list; the module cache lives under the first entry.
		cache = filepath.Join(filepath.SplitList(gopath)[0], "pkg", "mod")
	}
	dir := filepath.Join(cache, filepath.FromSlash(SamplesModule), "testdata")
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("gen: sample directory of %s not found (run `go mod download github.com/suyashkumar/dicom`): %w", SamplesModule, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("gen: %s is not a directory", dir)
	}
	return dir, nil
}

// ChartPatient generates the record of one patient seen by radiology and cardiology, for
// the EMR chart tests: a CT study (20 slices, with an SR), an MR study, an XA cine study
// with a 12-lead ECG, and an echocardiography US cine, on four dates. Accession numbers
// are CH, the issuer's initial, the ID's last two characters and the study number
// (CHL0103: the XA study of LUMEN-C0001 of LUMEN-TEST).
func ChartPatient(seed uint64, p Patient, ctSlices int) ([]Object, error) {
	study := func(sn int, date, tm, desc string) Options {
		acc := fmt.Sprintf("CH%.1s%s%02d", p.Issuer, p.ID[max(0, len(p.ID)-2):], sn) // CH, issuer initial, ID end, study
		return Options{Seed: seed, Patient: p, StudyID: fmt.Sprintf("%d", 2000+sn), AccessionNumber: acc,
			StudyDate: date, StudyTime: tm, StudyDescription: desc}
	}
	series := func(o Options, num int) Options { o.SeriesNumber = num; return o }
	ct := study(1, "20230105", "090000", "CT Abdomen")
	mr := study(2, "20240214", "101500", "MR Knee")
	xa := study(3, "20250320", "134500", "Coronary angiography")
	us := study(4, "20260410", "081000", "Echocardiography")
	var out []Object
	add := func(objs []Object, err error) error {
		out = append(out, objs...)
		return err
	}
	one := func(o Object, err error) ([]Object, error) { return []Object{o}, err }
	err := errors.Join(
		add(CTSeries(series(ct, 1), ctSlices, 64, 64)),
		add(MRSeries(series(mr, 1), 4, 64, 64)),
		add(one(XACine(series(xa, 1), 12, 64, 64))),
		add(one(ECG12Lead(series(xa, 2)))),
		add(one(USCine(series(us, 1), 8, 48, 64))),
	)
	return out, err
}
