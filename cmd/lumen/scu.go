package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/service/send"
	"github.com/spf13/cobra"
)

// parsePeer parses AE@host:port.
func parsePeer(s string) (ae, addr string, err error) {
	ae, addr, ok := strings.Cut(s, "@")
	if !ok || ae == "" || len(ae) > 16 {
		return "", "", fmt.Errorf("peer %q: want AE@host:port", s)
	}
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", "", fmt.Errorf("peer %q: want AE@host:port", s)
	}
	if _, err := strconv.Atoi(addr[i+1:]); err != nil {
		return "", "", fmt.Errorf("peer %q: bad port", s)
	}
	return ae, addr, nil
}

func newEchoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "echo AE@host:port",
		Short: "Verify a DICOM peer with C-ECHO",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ae, addr, err := parsePeer(args[0])
			if err != nil {
				return err
			}
			aet, _ := cmd.Flags().GetString("aet")
			start := time.Now()
			c, err := dimse.Dial(cmd.Context(), addr, dimse.DialConfig{CallingAETitle: aet, CalledAETitle: ae,
				Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian, dimse.ImplicitVRLittleEndian}}}})
			if err != nil {
				return err
			}
			st, err := c.Echo(cmd.Context())
			if err != nil {
				c.Abort()
				return err
			}
			c.Release()
			if st.Code != dimse.StatusSuccess {
				return fmt.Errorf("C-ECHO status 0x%04X %s", st.Code, st.ErrorComment)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "C-ECHO %s@%s: success in %s\n", ae, addr, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().String("aet", "LUMEN", "calling AE title")
	return cmd
}

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store AE@host:port PATH...",
		Short: "Send DICOM files (and directories, recursively) to a peer with C-STORE",
		Long: `Send PS3.10 files to a DICOM peer over one association. Each data set is sent in its
stored transfer syntax (no transcoding); a peer that does not accept it for the SOP class
gets that file reported as failed. Exit status 1 when any file failed.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ae, addr, err := parsePeer(args[0])
			if err != nil {
				return err
			}
			aet, _ := cmd.Flags().GetString("aet")
			out := cmd.OutOrStdout()
			var files []send.File
			failed := 0
			for _, f := range ingest.ListFiles(args[1:]) {
				if f.Err != nil {
					fmt.Fprintf(out, "%s: cannot read: %s\n", f.Path, f.Err)
					failed++
					continue
				}
				sf, err := send.Inspect(f.Path)
				if err != nil {
					fmt.Fprintf(out, "%s: %v\n", f.Path, err)
					failed++
					continue
				}
				files = append(files, sf)
			}
			c, err := dimse.Dial(cmd.Context(), addr, dimse.DialConfig{CallingAETitle: aet, CalledAETitle: ae, Contexts: send.FileContexts(files)})
			if err != nil {
				return err
			}
			defer c.Release()
			ok := 0
			start := time.Now()
			for _, f := range files {
				st, err := f.Store(cmd.Context(), c)
				switch {
				case err != nil:
					fmt.Fprintf(out, "%s: %v\n", f.Path, err)
					failed++
				case st.Code != dimse.StatusSuccess && st.Code&0xF000 != 0xB000:
					fmt.Fprintf(out, "%s: status 0x%04X %s\n", f.Path, st.Code, st.ErrorComment)
					failed++
				default:
					ok++
				}
			}
			fmt.Fprintf(out, "store: %d sent, %d failed in %s\n", ok, failed, time.Since(start).Round(time.Millisecond))
			if failed > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().String("aet", "LUMEN", "calling AE title")
	return cmd
}
