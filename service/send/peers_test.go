package send_test

import (
	"crypto/tls"
	"testing"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/send"
)

// TestPeersDestination: a destination is a known peer with a host and a port, found by
// its exact AE title; a TLS peer gets the client configuration for its host.
func TestPeersDestination(t *testing.T) {
	secure := &tls.Config{MinVersion: tls.VersionTLS13}
	var asked []string
	book := &send.Peers{
		List: []send.Peer{
			{AETitle: "DEST", Host: "10.0.0.5", Port: 104},
			{AETitle: "NOHOST", Port: 104},
			{AETitle: "NOPORT", Host: "10.0.0.6"},
			{AETitle: "SECURE", Host: "pacs.example", Port: 2762, TLS: true},
		},
		TLS: func(serverName string) *tls.Config { asked = append(asked, serverName); return secure },
	}
	for _, tc := range []struct {
		ae   string
		ok   bool
		want send.Destination
	}{
		{"DEST", true, send.Destination{AETitle: "DEST", Host: "10.0.0.5", Port: 104}},
		{"SECURE", true, send.Destination{AETitle: "SECURE", Host: "pacs.example", Port: 2762, TLS: secure}},
		{"NOHOST", false, send.Destination{}},
		{"NOPORT", false, send.Destination{}},
		{"UNKNOWN", false, send.Destination{}},
		{"dest", false, send.Destination{}}, // AE titles are matched exactly
		{"", false, send.Destination{}},
	} {
		asked = nil
		d, ok := book.Destination(tc.ae)
		if ok != tc.ok || d != tc.want {
			t.Errorf("Destination(%q) = %+v, %v; want %+v, %v", tc.ae, d, ok, tc.want, tc.ok)
		}
		// The TLS configuration is asked for the peer's host, and only for TLS peers.
		if wantAsked := tc.want.TLS != nil; (len(asked) == 1 && asked[0] == tc.want.Host) != wantAsked || len(asked) > 1 {
			t.Errorf("Destination(%q): TLS configuration asked for %v", tc.ae, asked)
		}
	}
	if d, ok := book.Destination("DEST"); ok && d.Addr() != "10.0.0.5:104" {
		t.Errorf("Addr() = %q", d.Addr())
	}
	var none *send.Peers
	if d, ok := none.Destination("DEST"); ok || d != (send.Destination{}) {
		t.Errorf("nil book: %+v, %v", d, ok)
	}
}

// TestForwardJobs: an instance gets one forward job per destination whose rule it
// matches (calling AE and modality, case-insensitively; empty fields match anything),
// never one back to the AE that sent it.
func TestForwardJobs(t *testing.T) {
	if send.ForwardJobs(nil) != nil {
		t.Fatal("ForwardJobs without rules is not nil")
	}
	rules := []send.Rule{
		{Modality: "CT", Destination: "ARCHIVE"},
		{CallingAE: "CT_SCANNER", Destination: "ARCHIVE"}, // ARCHIVE again: once
		{CallingAE: "ct_scanner", Modality: "ct", Destination: "AI"},
		{Modality: "MR", Destination: "MR_WS"},
		{Destination: "MIRROR"},
	}
	jobs := send.ForwardJobs(rules)
	inst := func(modality string) *index.Instance {
		in := &index.Instance{}
		in.SOPInstanceUID, in.Modality = "1.2.3.4", modality
		return in
	}
	for _, tc := range []struct {
		name      string
		modality  string
		callingAE string
		want      []string // destinations, in rule order
	}{
		{"CT from the scanner", "CT", "CT_SCANNER", []string{"ARCHIVE", "AI", "MIRROR"}},
		{"CT from the scanner, other case", "ct", "Ct_Scanner", []string{"ARCHIVE", "AI", "MIRROR"}},
		{"CT over DICOMweb", "CT", "", []string{"ARCHIVE", "MIRROR"}},
		{"MR from elsewhere", "MR", "OTHER", []string{"MR_WS", "MIRROR"}},
		{"MR from the scanner", "MR", "CT_SCANNER", []string{"ARCHIVE", "MR_WS", "MIRROR"}},
		{"never back to the sender", "CT", "MIRROR", []string{"ARCHIVE"}},
		{"never back to the sender, other case", "MR", "mr_ws", []string{"MIRROR"}},
		{"US from elsewhere", "US", "OTHER", []string{"MIRROR"}},
	} {
		got := jobs(inst(tc.modality), tc.callingAE)
		var want []index.JobSpec
		for _, d := range tc.want {
			want = append(want, index.JobSpec{Kind: index.JobForward, Key: index.ForwardKey(d, "1.2.3.4")})
		}
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", tc.name, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: %v, want %v", tc.name, got, want)
				break
			}
		}
	}
}
