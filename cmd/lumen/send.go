package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/lumenpacs/lumen/service/send"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newSendCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send --to AE@host:port [--study UID | --series UID | --instance UID | --query key=value...]",
		Short: "Send stored instances to a DICOM peer (C-STORE)",
		Long: `Send stored instances to a DICOM storage SCP over one association: each as stored when
the peer accepts its transfer syntax, else decompressed (or rewritten) to Explicit VR
Little Endian. One line per instance says the outcome; the exit status is 1 when any
instance failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			to, _ := cmd.Flags().GetString("to")
			ae, addr, err := parsePeer(to)
			if err != nil {
				return err
			}
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return err
			}
			p, _ := strconv.Atoi(port)
			study, _ := cmd.Flags().GetString("study")
			series, _ := cmd.Flags().GetString("series")
			instance, _ := cmd.Flags().GetString("instance")
			query, _ := cmd.Flags().GetStringArray("query")
			c, b, err := setup(cmd)
			if err != nil {
				return err
			}
			defer b.Close()
			list, err := send.Select(cmd.Context(), b.index, study, series, instance, query)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				return fmt.Errorf("nothing matches")
			}
			aet, _ := cmd.Flags().GetString("aet")
			if aet == "" {
				aet = c.DIMSE.AETitle
			}
			var bytes int64
			for _, in := range list {
				bytes += in.Size
			}
			out := cmd.OutOrStdout()
			bar := progressbar.NewOptions64(bytes, progressbar.OptionSetWriter(cmd.ErrOrStderr()), progressbar.OptionShowBytes(true),
				progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionSetDescription("sending"), progressbar.OptionClearOnFinish())
			sizes := map[string]int64{}
			for _, in := range list {
				sizes[in.SOPInstanceUID] = in.Size
			}
			ok, failed := 0, 0
			start := time.Now()
			s := &send.Sender{Store: b.store, CallingAETitle: aet}
			err = s.Send(cmd.Context(), send.Destination{AETitle: ae, Host: host, Port: p}, list, send.Options{}, func(r send.Result) error {
				bar.Add64(sizes[r.SOPInstanceUID])
				fmt.Fprintln(out, r.String())
				if r.Failed() {
					failed++
				} else {
					ok++
				}
				return nil
			})
			bar.Finish()
			fmt.Fprintf(out, "sent %d of %d instances (%d failed) to %s in %s\n", ok, len(list), failed, to, time.Since(start).Round(time.Millisecond))
			if err != nil {
				return err
			}
			if failed > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().String("to", "", "destination AE@host:port (required)")
	cmd.Flags().String("study", "", "Study Instance UID")
	cmd.Flags().String("series", "", "Series Instance UID")
	cmd.Flags().String("instance", "", "SOP Instance UID")
	cmd.Flags().StringArray("query", nil, "matching key, keyword or tag = value (repeatable), e.g. PatientID=123 or StudyDate=20240101-")
	cmd.Flags().String("aet", "", "calling AE title (default: dimse.ae_title)")
	cmd.MarkFlagRequired("to")
	return cmd
}

// resultLine describes one instance's outcome (no patient data: UIDs and statuses).
