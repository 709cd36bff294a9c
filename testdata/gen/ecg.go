package gen

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ECG parameters of ECG12Lead.
const (
	// ECGSamplingFrequency is the sampling frequency in Hz.
	ECGSamplingFrequency = 500
	// ECGSamples is the number of samples per channel (10 s).
	ECGSamples = 5000
	// ECGHeartRate is the heart rate of the synthetic rhythm in beats per minute.
	ECGHeartRate = 72
)

// ecgLead is one channel of the 12-lead ECG: its label and its code in
// DICOM CID 3001 (ECG Leads, ISO/IEEE 11073-10101 "MDC" codes).
type ecgLead struct {
	label, code, meaning string
}

// ecgLeads are the 12 standard leads in the conventional order.
var ecgLeads = []ecgLead{
	{"I", "2:1", "Lead I"},
	{"II", "2:2", "Lead II"},
	{"III", "2:61", "Lead III"},
	{"aVR", "2:62", "aVR, augmented voltage, right"},
	{"aVL", "2:63", "aVL, augmented voltage, left"},
	{"aVF", "2:64", "aVF, augmented voltage, foot"},
	{"V1", "2:3", "Lead V1"},
	{"V2", "2:4", "Lead V2"},
	{"V3", "2:5", "Lead V3"},
	{"V4", "2:6", "Lead V4"},
	{"V5", "2:7", "Lead V5"},
	{"V6", "2:8", "Lead V6"},
}

// ECGLeadLabels returns the ChannelLabel of each channel of ECG12Lead, in
// channel order.
func ECGLeadLabels() []string {
	out := make([]string, len(ecgLeads))
	for i, l := range ecgLeads {
		out[i] = l.label
	}
	return out
}

// ECG12Lead generates one 12-lead ECG Waveform Storage object (Modality
// ECG): a single multiplex group "RHYTHM" of 12 channels (I, II, III, aVR,
// aVL, aVF, V1–V6, coded with MDC codes of CID 3001) × 5000 samples at
// 500 Hz, 16-bit signed ("SS"), channel-interleaved in WaveformData (OW),
// 1 µV per unit (ChannelSensitivity 1 uV, correction factor 1, baseline 0).
// The signal is a synthetic PQRST beat at 72 beats per minute projected
// onto each lead, with slight baseline wander and noise. The object is
// named Dir/ecg-12lead.dcm.
func ECG12Lead(opt Options) (Object, error) {
	r := resolve(opt, kindECG, "ECG", "Synthetic resting 12-lead ECG", "")
	sop := r.instanceUID(1)
	b := &builder{}
	b.common(r, TwelveLeadECGWaveformStorage, sop, "ECG", 1)
	b.str(tag.AcquisitionDateTime, r.StudyDate+r.StudyTime)
	b.seq(tag.AcquisitionContextSequence)

	channels := make([][]*dicom.Element, len(ecgLeads))
	for i, l := range ecgLeads {
		channels[i] = b.item(func(c *builder) {
			c.str(tag.WaveformChannelNumber, strconv.Itoa(i+1))
			c.str(tag.ChannelLabel, l.label)
			c.seq(tag.ChannelSourceSequence, c.item(func(s *builder) {
				s.str(tag.CodeValue, l.code)
				s.str(tag.CodingSchemeDesignator, "MDC")
				s.str(tag.CodeMeaning, l.meaning)
			}))
			c.str(tag.ChannelSensitivity, "1")
			c.seq(tag.ChannelSensitivityUnitsSequence, c.code("uV", "UCUM", "microvolt"))
			c.str(tag.ChannelSensitivityCorrectionFactor, "1")
			c.str(tag.ChannelBaseline, "0")
			c.str(tag.ChannelSampleSkew, "0")
			c.ints(tag.WaveformBitsStored, 16)
			c.str(tag.FilterLowFrequency, "0.05")
			c.str(tag.FilterHighFrequency, "150")
		})
	}
	b.seq(tag.WaveformSequence, b.item(func(w *builder) {
		w.str(tag.WaveformOriginality, "ORIGINAL")
		w.ints(tag.NumberOfWaveformChannels, len(ecgLeads))
		w.ints(tag.NumberOfWaveformSamples, ECGSamples)
		w.str(tag.SamplingFrequency, strconv.Itoa(ECGSamplingFrequency))
		w.str(tag.MultiplexGroupLabel, "RHYTHM")
		w.seq(tag.ChannelDefinitionSequence, channels...)
		w.ints(tag.WaveformBitsAllocated, 16)
		w.str(tag.WaveformSampleInterpretation, "SS")
		w.addVR(tag.WaveformData, "OW", ecgSamples(r.Seed))
	}))

	data, err := b.encode()
	if err != nil {
		return Object{}, err
	}
	return r.object(r.Dir+"/ecg-12lead.dcm", sop, TwelveLeadECGWaveformStorage, "ECG", 1, 0, data), nil
}

// ecgWave is one Gaussian component of the beat: its cardiac vector
// amplitude in µV (x: leftward, y: inferior, z: anterior), its centre
// relative to the R peak in seconds and its width in seconds.
type ecgWave struct {
	x, y, z, centre, width float64
}

var ecgBeat = []ecgWave{
	{60, 130, 20, -0.17, 0.025},    // P
	{-40, -50, 80, -0.035, 0.009},  // Q
	{650, 950, -350, 0, 0.011},     // R
	{-120, -220, 550, 0.035, 0.01}, // S
	{160, 260, -60, 0.27, 0.045},   // T
}

// ecgSamples returns the channel-interleaved little-endian int16 samples.
func ecgSamples(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(kindECG)<<32))
	rr := 60.0 / ECGHeartRate
	// Horizontal-plane angles of V1..V6 from the leftward axis towards
	// anterior, in degrees.
	precordial := []float64{115, 94, 75, 60, 30, 0}
	out := make([]byte, 0, ECGSamples*len(ecgLeads)*2)
	lead := make([]float64, len(ecgLeads))
	for s := range ECGSamples {
		t := float64(s) / ECGSamplingFrequency
		// Time relative to the nearest R peak; the first R peak is at 0.4 s.
		rel := math.Mod(t-0.4+rr/2, rr)
		if rel < 0 {
			rel += rr
		}
		rel -= rr / 2
		var x, y, z float64
		for _, w := range ecgBeat {
			g := math.Exp(-sq((rel-w.centre)/w.width) / 2)
			x += w.x * g
			y += w.y * g
			z += w.z * g
		}
		wander := 25 * math.Sin(2*math.Pi*0.25*t)
		lI := x
		lII := 0.5*x + 0.866*y
		lead[0] = lI
		lead[1] = lII
		lead[2] = lII - lI
		lead[3] = -(lI + lII) / 2
		lead[4] = lI - lII/2
		lead[5] = lII - lI/2
		for k, deg := range precordial {
			a := deg * math.Pi / 180
			lead[6+k] = x*math.Cos(a) + z*math.Sin(a)
		}
		for _, v := range lead {
			v += wander + rng.NormFloat64()*4
			out = binary.LittleEndian.AppendUint16(out, uint16(int16(clamp(v, math.MinInt16, math.MaxInt16))))
		}
	}
	return out
}
