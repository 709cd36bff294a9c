package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/lumenpacs/lumen/testdata/gen"
)

// ref names one instance for DICOMweb URLs.
type ref struct{ study, series, sop string }

func (r ref) path() string {
	return "/studies/" + r.study + "/series/" + r.series + "/instances/" + r.sop
}

// corpus is what the run sends: 4 CT studies, an ultrasound cine, small instances and
// the one-instance studies of the query figures.
type corpus struct {
	dir      string
	ct       [4][]ref // per study
	ctBytes  [4]int64
	us       ref
	usFrames int
	small    int
	// The query corpus, when -studies > 0.
	patients   []string // PatientIDs
	studyUIDs  []string
	queryCount int
}

func (c *corpus) ctDir(i int) string    { return filepath.Join(c.dir, "ct", fmt.Sprint(i)) }
func (c *corpus) smallDir(i int) string { return filepath.Join(c.dir, "small", fmt.Sprint(i)) }
func (c *corpus) queryDir(i int) string { return filepath.Join(c.dir, "query", fmt.Sprint(i)) }

// Names of the query corpus: 40 family names, so a three-letter prefix such as SMI
// matches about 1/40 of the patients.
var familyNames = []string{"SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "MÜLLER", "SCHMIDT",
	"SCHNEIDER", "FISCHER", "WEBER", "MEYER", "WAGNER", "BECKER", "SCHULZ", "HOFFMANN", "MARTIN", "BERNARD", "DUBOIS",
	"THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY", "MOREAU", "ROSSI", "RUSSO", "FERRARI", "ESPOSITO",
	"BIANCHI", "ROMANO", "COLOMBO", "RICCI", "NOVAK", "HORVAT", "KOWALSKI", "NOWAK"}
var givenNames = []string{"ANNA", "JOHN", "MARIA", "PETER", "LAURA", "PAUL", "SOPHIE", "DAVID", "EMMA", "LUCAS", "CLARA", "MARC", "JULIA", "TOM"}

// makeCorpus writes the corpus under dir.
func makeCorpus(c *cfg, dir string) (*corpus, error) {
	k := &corpus{dir: dir, usFrames: 10, small: c.small}
	for i := 0; i < 4; i++ {
		opt := gen.Options{Seed: uint64(100 + i), Dir: "ct/" + fmt.Sprint(i), StudyID: fmt.Sprint(9100 + i), AccessionNumber: fmt.Sprintf("BENCHCT%d", i),
			Patient:          gen.Patient{ID: fmt.Sprintf("BENCH-CT-%d", i), Name: fmt.Sprintf("Bench^CT%d", i), BirthDate: "19700101", Sex: "O"},
			StudyDescription: "Benchmark CT"}
		err := gen.CTSeriesFunc(opt, c.ctPerStudy, 512, 512, func(o gen.Object) error {
			k.ct[i] = append(k.ct[i], ref{o.StudyUID, o.SeriesUID, o.SOPInstanceUID})
			k.ctBytes[i] += int64(len(o.Data))
			return gen.WriteCorpus(dir, []gen.Object{o})
		})
		if err != nil {
			return nil, err
		}
	}
	us, err := gen.USCine(gen.Options{Seed: 200, Dir: "us", Patient: gen.Patient{ID: "BENCH-US", Name: "Bench^US", BirthDate: "19700101", Sex: "O"}}, k.usFrames, 480, 640)
	if err != nil {
		return nil, err
	}
	k.us = ref{us.StudyUID, us.SeriesUID, us.SOPInstanceUID}
	if err := gen.WriteCorpus(dir, []gen.Object{us}); err != nil {
		return nil, err
	}
	for i := 0; i < c.small; i++ {
		if err := writeSmall(dir, "small", i, 300000+i); err != nil {
			return nil, err
		}
	}
	if c.studies > 0 {
		npat := max(1, c.studies*3/10)
		for i := 0; i < npat; i++ {
			k.patients = append(k.patients, fmt.Sprintf("Q%06d", i))
		}
		for i := 0; i < c.studies; i++ {
			uid, err := writeQueryStudy(dir, i, npat)
			if err != nil {
				return nil, err
			}
			k.studyUIDs = append(k.studyUIDs, uid)
		}
		k.queryCount = c.studies
	}
	return k, nil
}

// writeSmall writes a one-instance CT study of 48×48 slices (about 5 KB) into
// dir/sub/(i%4).
func writeSmall(dir, sub string, i, seed int) error {
	opt := gen.Options{Seed: uint64(seed), Dir: fmt.Sprintf("%s/%d", sub, i%4), StudyID: fmt.Sprint(i), AccessionNumber: fmt.Sprintf("S%07d", i),
		Patient: gen.Patient{ID: fmt.Sprintf("SMALL%06d", i), Name: "Small^Instance", BirthDate: "19800101", Sex: "O"}}
	return gen.CTSeriesFunc(opt, 1, 48, 48, func(o gen.Object) error {
		o.Name = fmt.Sprintf("%s/%d/%07d.dcm", sub, i%4, i)
		return gen.WriteCorpus(dir, []gen.Object{o})
	})
}

// writeQueryStudy writes study i of the query corpus: patient i mod npat, a name drawn
// from the lists, a date spread over 2015–2025, CT or MR, 48×48 (about 5 KB).
func writeQueryStudy(dir string, i, npat int) (string, error) {
	return writeStudy(dir, "query", i, npat, 1)
}

// writeStudy writes study i (instances 48×48 slices) into dir/sub/(i%4), for patient i
// mod npat with a name drawn from the lists, a date spread over 2015–2025, CT or MR.
func writeStudy(dir, sub string, i, npat, instances int) (string, error) {
	p := i % npat
	name := familyNames[(p*7)%len(familyNames)] + "^" + givenNames[(p*3)%len(givenNames)]
	date := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (i*37)%4000).Format("20060102")
	opt := gen.Options{Seed: uint64(1_000_000 + i), StudyID: fmt.Sprint(i), AccessionNumber: fmt.Sprintf("A%07d", i), StudyDate: date,
		StudyDescription: "Query corpus", Patient: gen.Patient{ID: fmt.Sprintf("Q%06d", p), Name: name, BirthDate: "19600101", Sex: "O"}}
	var uid string
	n := 0
	write := func(o gen.Object) error {
		uid = o.StudyUID
		o.Name = fmt.Sprintf("%s/%d/%07d-%03d.dcm", sub, i%4, i, n)
		n++
		return gen.WriteCorpus(dir, []gen.Object{o})
	}
	var err error
	if i%2 == 0 {
		err = gen.CTSeriesFunc(opt, instances, 48, 48, write)
	} else {
		err = gen.MRSeriesFunc(opt, instances, 48, 48, write)
	}
	return uid, err
}
