package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/service/send"
)

// SendRequest is the body of POST /api/v1/send.
type SendRequest struct {
	Destination       string   `json:"destination"` // a known peer's AE title
	StudyInstanceUID  string   `json:"studyInstanceUID,omitempty"`
	SeriesInstanceUID string   `json:"seriesInstanceUID,omitempty"`
	SOPInstanceUID    string   `json:"sopInstanceUID,omitempty"`
	Query             []string `json:"query,omitempty"`
}

// SendEvent is one line of the answer of POST /api/v1/send (NDJSON).
type SendEvent struct {
	SOPInstanceUID string `json:"sopInstanceUID,omitempty"`
	Outcome        string `json:"outcome"` // ok, warning, failed, done, error
	TransferSyntax string `json:"transferSyntax,omitempty"`
	Status         string `json:"status,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Done           int    `json:"done"`
	Total          int    `json:"total"`
	Failed         int    `json:"failed"`
}

// Send serves POST /api/v1/send: an authenticated client (the send role) sends a study,
// series or instance to a known peer; the answer streams one JSON line per instance
// (progress) and a final line.
type Send struct {
	Index  send.Finder
	Sender *send.Sender
	Peers  *send.Peers
	Logger *slog.Logger
}

// Register adds the route to e.
func (s *Send) Register(e *echo.Echo) { e.POST("/api/v1/send", s.push) }

func (s *Send) push(c echo.Context) error {
	idx, sender, peers, log := s.Index, s.Sender, s.Peers, s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var req SendRequest
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<16)).Decode(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "the body must be JSON: {destination, studyInstanceUID | seriesInstanceUID | sopInstanceUID | query}")
	}
	dst, ok := peers.Destination(req.Destination)
	if !ok {
		return echo.NewHTTPError(http.StatusBadRequest, "destination "+req.Destination+" is not a known peer with a host and port (dimse.peers)")
	}
	ctx := c.Request().Context()
	list, err := send.Select(ctx, idx, req.StudyInstanceUID, req.SeriesInstanceUID, req.SOPInstanceUID, req.Query)
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
	ev := SendEvent{Total: len(list)}
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
