// Command webbench measures a DICOMweb server on loopback: STOW-RS of a directory of
// PS3.10 files (in requests of -batch instances, bodies streamed), then WADO-RS
// retrieval of every study it stored. It prints one line of figures. Used by
// .ci/bench-dicomweb-orthanc to compare Lumen and Orthanc's DICOMweb plugin.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/dcm"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080/dicom-web", "DICOMweb base URL")
	dir := flag.String("dir", "", "directory of .dcm files")
	batch := flag.Int("batch", 50, "instances per STOW-RS request")
	name := flag.String("name", "server", "label of the output line")
	flag.Parse()
	var files []string
	studies := map[string]bool{}
	var total int64
	err := filepath.WalkDir(*dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".dcm") {
			return err
		}
		files = append(files, p)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		st, _ := f.Stat()
		total += st.Size()
		pf, err := dcm.Parse(f, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		studies[pf.Dataset.String(dcm.TagStudyInstanceUID)] = true
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	sort.Strings(files)
	t0 := time.Now()
	for i := 0; i < len(files); i += *batch {
		if err := stow(*base, files[i:min(i+*batch, len(files))]); err != nil {
			log.Fatal(err)
		}
	}
	stowDur := time.Since(t0)
	t1 := time.Now()
	var got int64
	parts := 0
	for s := range studies {
		n, p, err := retrieve(*base + "/studies/" + s)
		if err != nil {
			log.Fatal(err)
		}
		got += n
		parts += p
	}
	wadoDur := time.Since(t1)
	if parts != len(files) {
		log.Fatalf("retrieved %d instances, stored %d", parts, len(files))
	}
	fmt.Printf("%-8s STOW-RS %5d instances %6.1f MB in %6.2f s: %7.1f inst/s %6.1f MB/s | WADO-RS study retrieve %6.1f MB in %5.2f s: %6.1f MB/s\n",
		*name, len(files), float64(total)/1e6, stowDur.Seconds(), float64(len(files))/stowDur.Seconds(), float64(total)/1e6/stowDur.Seconds(),
		float64(got)/1e6, wadoDur.Seconds(), float64(got)/1e6/wadoDur.Seconds())
}

// stow posts files as one multipart/related request, streaming the body.
func stow(base string, files []string) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, f := range files {
			w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			in, err := os.Open(f)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			_, err = io.Copy(w, in)
			in.Close()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest(http.MethodPost, base+"/studies", pr)
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("STOW-RS: %d %s", resp.StatusCode, b)
	}
	return nil
}

// retrieve reads a multipart/related answer, returning the bytes and parts received.
func retrieve(u string) (int64, int, error) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return 0, 0, err
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var n int64
	parts := 0
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return n, parts, nil
		}
		if err != nil {
			return n, parts, err
		}
		m, err := io.Copy(io.Discard, p)
		n += m
		parts++
		if err != nil {
			return n, parts, err
		}
	}
}
