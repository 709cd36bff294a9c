package send

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
)

// File is a PS3.10 file to send as it is stored (`lumen store`): its SOP class and
// instance and transfer syntax from the File Meta Information, and where its data set
// starts.
type File struct {
	Path                        string
	SOPClassUID, SOPInstanceUID string
	TransferSyntax              string
	Offset                      int64
}

// Inspect reads a file's meta information (PS3.10 7.1).
func Inspect(path string) (File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer fh.Close()
	head := make([]byte, 64<<10)
	n, _ := io.ReadFull(fh, head)
	if !dcm.Sniff(head[:n]) {
		return File{}, fmt.Errorf("not a DICOM PS3.10 file")
	}
	st, _ := fh.Stat()
	f, err := dcm.Parse(io.MultiReader(bytes.NewReader(head[:n]), fh), &dcm.Options{Size: st.Size()})
	if err != nil {
		return File{}, err
	}
	return File{Path: path, SOPClassUID: f.Meta.String(dcm.TagMediaStorageSOPClassUID), SOPInstanceUID: f.Meta.String(dcm.TagMediaStorageSOPInstanceUID),
		TransferSyntax: f.TransferSyntax, Offset: f.DatasetOffset}, nil
}

// FileContexts are the presentation contexts to propose for files: one per (SOP class,
// transfer syntax), at most 128 (PS3.8 9.3.2.2 allows 128 odd context IDs).
func FileContexts(files []File) []dimse.ProposedContext {
	seen := map[string]bool{}
	var contexts []dimse.ProposedContext
	for _, f := range files {
		if k := f.SOPClassUID + "|" + f.TransferSyntax; !seen[k] && len(contexts) < 128 {
			seen[k] = true
			contexts = append(contexts, dimse.ProposedContext{AbstractSyntax: f.SOPClassUID, TransferSyntaxes: []string{f.TransferSyntax}})
		}
	}
	return contexts
}

// Store sends the file's data set, streamed from the file, with one C-STORE.
func (f File) Store(ctx context.Context, c *dimse.Client) (dimse.Status, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return dimse.Status{}, err
	}
	defer fh.Close()
	if _, err := fh.Seek(f.Offset, io.SeekStart); err != nil {
		return dimse.Status{}, err
	}
	return c.Store(ctx, f.SOPClassUID, f.SOPInstanceUID, f.TransferSyntax, fh)
}
