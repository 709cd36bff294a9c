package render_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/render"
	"github.com/lumenpacs/lumen/testdata/gen"
)

func TestWaveformsOfECG(t *testing.T) {
	o, err := gen.ECG12Lead(gen.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	f, err := dcm.Parse(bytes.NewReader(o.Data), &dcm.Options{BulkThreshold: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := render.Waveforms(f.Dataset)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || len(ws[0].Channels) != 12 || ws[0].Rate != gen.ECGSamplingFrequency {
		t.Fatalf("%d groups, %d channels, %g Hz", len(ws), len(ws[0].Channels), ws[0].Rate)
	}
	want := []string{"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}
	for i, ch := range ws[0].Channels {
		if ch.Label != want[i] || ch.Unit != "mV" || len(ch.Data) != gen.ECGSamples {
			t.Fatalf("channel %d: %q %q %d samples", i, ch.Label, ch.Unit, len(ch.Data))
		}
	}
	// Lead II's R waves are about 1 mV (the generator's 950 µV inferior component).
	peak := 0.0
	for _, v := range ws[0].Channels[1].Data {
		peak = max(peak, v)
	}
	if peak < 0.7 || peak > 1.5 {
		t.Fatalf("lead II peak %.2f mV", peak)
	}
	img := render.DrawECG(ws[0], 4)
	if img.Bounds().Dx() != 1001 {
		t.Fatalf("10 s at 25 mm/s and 4 px/mm should be 250 mm = 1000 px wide, got %d", img.Bounds().Dx())
	}
}

// TestECGScale draws a 12-lead recording whose lead II holds a 1 mV, 200 ms pulse and
// measures, in pixels, the grid (1 mm and 5 mm), the paper speed (25 mm/s) and the gain
// (10 mm/mV) on the rhythm strip.
func TestECGScale(t *testing.T) {
	const rate, pxPerMM = 500.0, 4.0
	names := []string{"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}
	w := render.Waveform{Rate: rate}
	for _, n := range names {
		ch := render.Channel{Label: n, Unit: "mV", Data: make([]float64, 10*rate)}
		if n == "II" {
			for s := int(6.0 * rate); s < int(6.2*rate); s++ {
				ch.Data[s] = 1
			}
		}
		w.Channels = append(w.Channels, ch)
	}
	img := render.DrawECG(w, pxPerMM)
	// Grid: along a row between horizontal lines, major lines every 5 mm, minor every 1 mm.
	y := int(2.5 * pxPerMM)
	var majors, minors []int
	for x := 0; x < img.Bounds().Dx(); x++ {
		switch img.RGBAAt(x, y) {
		case render.GridMajor:
			majors = append(majors, x)
		case render.GridMinor:
			minors = append(minors, x)
		}
	}
	for i := 1; i < len(majors); i++ {
		if d := majors[i] - majors[i-1]; d != int(5*pxPerMM) {
			t.Fatalf("major grid lines %d px apart at %d, want %g", d, majors[i], 5*pxPerMM)
		}
	}
	if len(majors) != 51 || len(minors) != 200 {
		t.Fatalf("%d major and %d minor grid lines across 250 mm", len(majors), len(minors))
	}
	// The trace of the rhythm strip (the fourth strip) per column: its top-most black pixel.
	top, bottom := int((3*30+2.5)*pxPerMM), int((4*30+2.5)*pxPerMM)
	traceY := func(x int) int {
		for y := top; y < bottom; y++ {
			if img.RGBAAt(x, y) == render.Trace {
				return y
			}
		}
		return -1
	}
	base := traceY(int(3 * MMPerSecondPx(pxPerMM)))
	plateau := traceY(int(6.1 * MMPerSecondPx(pxPerMM)))
	if base < 0 || plateau < 0 {
		t.Fatal("no trace on the rhythm strip")
	}
	if d := base - plateau; math.Abs(float64(d)-10*pxPerMM) > 1 {
		t.Fatalf("1 mV is %d px high, want %g (10 mm/mV)", d, 10*pxPerMM)
	}
	// Width of the pulse: columns whose trace is at the plateau level.
	n := 0
	for x := 0; x < img.Bounds().Dx(); x++ {
		if y := traceY(x); y >= 0 && y <= plateau+1 {
			n++
		}
	}
	if math.Abs(float64(n)-0.2*render.MMPerSecond*pxPerMM) > 2 {
		t.Fatalf("a 200 ms pulse is %d px wide, want %g (25 mm/s)", n, 0.2*render.MMPerSecond*pxPerMM)
	}
}

// MMPerSecondPx is the paper speed in pixels per second.
func MMPerSecondPx(pxPerMM float64) float64 { return render.MMPerSecond * pxPerMM }
