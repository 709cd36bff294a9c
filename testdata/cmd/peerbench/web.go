package main

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// client is the HTTP client of every request: keep-alive connections, enough of them
// for the parallel figures.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true, ReadBufferSize: 1 << 20, WriteBufferSize: 1 << 20}}

// stow posts the .dcm files of dir as multipart/related requests of batch instances,
// bodies streamed from the files.
func stow(base, dir string, batch int) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".dcm" {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for i := 0; i < len(files); i += batch {
		if err := stowBatch(base, files[i:min(i+batch, len(files))]); err != nil {
			return err
		}
	}
	return nil
}

func stowBatch(base string, files []string) error {
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
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("STOW-RS: %d %s", resp.StatusCode, tail(b))
	}
	return nil
}

// retrieve reads a WADO-RS multipart/related answer as fast as the client can: big
// reads, the parts counted by their boundary delimiters (bytes.Count) rather than
// parsed, so that the client is not what limits the figure. It returns the body's
// bytes and the number of parts.
func retrieve(u string) (int64, int, error) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, tail(b))
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return 0, 0, fmt.Errorf("GET %s: content type %q", u, resp.Header.Get("Content-Type"))
	}
	// Every part follows a delimiter "--boundary", and a close delimiter ends the body.
	delim := []byte("--" + params["boundary"])
	buf := make([]byte, 1<<20+len(delim))
	keep := 0 // the last bytes of the previous read: a delimiter across two reads counts once
	var total int64
	count := 0
	for {
		n, err := resp.Body.Read(buf[keep : keep+1<<20])
		total += int64(n)
		count += bytes.Count(buf[:keep+n], delim)
		if k := min(len(delim)-1, keep+n); k > 0 {
			copy(buf, buf[keep+n-k:keep+n])
			keep = k
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, 0, err
		}
	}
	return total, count - 1, nil // the close delimiter ends the last part
}

// get fetches u with the Accept header and returns the time to the whole body.
func get(u, accept string) (time.Duration, int, error) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return d, int(n), nil
}
