package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/send"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// selectInstances resolves what to send: a study, series or instance by UID, and/or
// query keys (keyword or tag = value, DICOM matching), at image level.
func selectInstances(ctx context.Context, idx index.Index, study, series, instance string, query []string) ([]index.Instance, error) {
	q := index.Query{Level: index.ImageLevel}
	for _, u := range []struct {
		tag dcm.Tag
		v   string
	}{{dcm.TagStudyInstanceUID, study}, {dcm.TagSeriesInstanceUID, series}, {dcm.TagSOPInstanceUID, instance}} {
		if u.v == "" {
			continue
		}
		if !dcm.ValidUID(u.v) {
			return nil, fmt.Errorf("%q is not a valid UID", u.v)
		}
		q.Filters = append(q.Filters, index.Filter{Tag: u.tag, Value: u.v})
	}
	for _, kv := range query {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("query %q: want key=value", kv)
		}
		tag, err := dcm.ParseTag(k)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", kv, err)
		}
		q.Filters = append(q.Filters, index.Filter{Tag: tag, Value: v})
	}
	if len(q.Filters) == 0 {
		return nil, fmt.Errorf("say what to send: a study, series or instance UID, or query keys")
	}
	res, err := idx.Find(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(res.Ignored) > 0 {
		return nil, fmt.Errorf("query keys the index cannot match: %v", res.Ignored)
	}
	return res.Instances, nil
}

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
			list, err := selectInstances(cmd.Context(), b.index, study, series, instance, query)
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
				fmt.Fprintln(out, resultLine(r))
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
func resultLine(r send.Result) string {
	switch {
	case r.Err != nil:
		return "FAILED  " + r.SOPInstanceUID + ": " + r.Err.Error()
	case r.Failed():
		return fmt.Sprintf("FAILED  %s: status 0x%04X %s", r.SOPInstanceUID, r.Status.Code, r.Status.ErrorComment)
	case r.Warning():
		return fmt.Sprintf("WARNING %s: status 0x%04X %s (%s)", r.SOPInstanceUID, r.Status.Code, r.Status.ErrorComment, r.TransferSyntax)
	}
	return "OK      " + r.SOPInstanceUID + " (" + r.TransferSyntax + ")"
}

// pushRequest is the body of POST /api/v1/send.
type pushRequest struct {
	Destination       string   `json:"destination"` // a known peer's AE title
	StudyInstanceUID  string   `json:"studyInstanceUID,omitempty"`
	SeriesInstanceUID string   `json:"seriesInstanceUID,omitempty"`
	SOPInstanceUID    string   `json:"sopInstanceUID,omitempty"`
	Query             []string `json:"query,omitempty"`
}

// pushEvent is one line of the answer of POST /api/v1/send (NDJSON).
type pushEvent struct {
	SOPInstanceUID string `json:"sopInstanceUID,omitempty"`
	Outcome        string `json:"outcome"` // ok, warning, failed, done, error
	TransferSyntax string `json:"transferSyntax,omitempty"`
	Status         string `json:"status,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Done           int    `json:"done"`
	Total          int    `json:"total"`
	Failed         int    `json:"failed"`
}

// pushHandler answers POST /api/v1/send: an authenticated client (a bearer token whose
// SHA-256 is in dimse.send_token_sha256) sends a study, series or instance to a known
// peer; the answer streams one JSON line per instance (progress) and a final line.
func pushHandler(idx index.Index, sender *send.Sender, peers *send.Peers, log *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req pushRequest
		if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<16)).Decode(&req); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "the body must be JSON: {destination, studyInstanceUID | seriesInstanceUID | sopInstanceUID | query}")
		}
		dst, ok := peers.Destination(req.Destination)
		if !ok {
			return echo.NewHTTPError(http.StatusBadRequest, "destination "+req.Destination+" is not a known peer with a host and port (dimse.peers)")
		}
		ctx := c.Request().Context()
		list, err := selectInstances(ctx, idx, req.StudyInstanceUID, req.SeriesInstanceUID, req.SOPInstanceUID, req.Query)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		if len(list) == 0 {
			return echo.NewHTTPError(http.StatusNotFound, "nothing matches")
		}
		w := c.Response()
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		ev := pushEvent{Total: len(list)}
		log.Info("send: push requested", "destination", dst.AETitle, "instances", len(list), "remote", c.RealIP())
		err = sender.Send(ctx, dst, list, send.Options{}, func(r send.Result) error {
			ev.Done++
			e := ev
			e.SOPInstanceUID, e.TransferSyntax = r.SOPInstanceUID, r.TransferSyntax
			switch {
			case r.Failed():
				ev.Failed++
				e.Failed, e.Outcome = ev.Failed, "failed"
				if r.Err != nil {
					e.Reason = r.Err.Error()
				}
			case r.Warning():
				e.Outcome = "warning"
			default:
				e.Outcome = "ok"
			}
			if r.Err == nil {
				e.Status = fmt.Sprintf("0x%04X", r.Status.Code)
			}
			if err := enc.Encode(e); err != nil {
				return err
			}
			w.Flush()
			return nil
		})
		ev.Outcome = "done"
		if err != nil {
			ev.Outcome, ev.Reason = "error", err.Error()
		}
		ev.SOPInstanceUID = ""
		enc.Encode(ev)
		return nil
	}
}
