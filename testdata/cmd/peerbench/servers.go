package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Loopback ports of the servers and of the DCMTK peers; -port-offset shifts them all, so
// two runs can share a machine.
var (
	lumenHTTP, lumenDIMSE     = 18080, 11112
	orthancHTTP, orthancDIMSE = 8042, 4242
	sinkPort                  = 11119 // storescp --ignore, destination of C-MOVE
)

// shiftPorts adds off to every port above.
func shiftPorts(off int) {
	for _, p := range []*int{&lumenHTTP, &lumenDIMSE, &orthancHTTP, &orthancDIMSE, &sinkPort} {
		*p += off
	}
}

// server is a running Lumen or Orthanc.
type server struct {
	name string // "lumen", "orthanc" or "baseline" (another lumen binary)
	ae   string
	port int    // DICOM
	web  string // DICOMweb base URL
	cmd  *exec.Cmd
	dir  string
}

// start runs a server of that name on a new data directory under work. The data
// directories of earlier starts stay until the run ends: removing thousands of files
// between measurements would make the next ones pay for it (see settleTime; and the
// memory their page cache held is free again, which on the benchmark machines costs the
// next writer a host fault per page, see durablePuts).
func start(c *cfg, name string) (*server, error) {
	dir, err := os.MkdirTemp(c.work, name+"-data-")
	if err != nil {
		return nil, err
	}
	return startOn(c, name, dir)
}

// startOn runs a server of that name on the data directory dir as it is.
func startOn(c *cfg, name, dir string) (*server, error) {
	s := &server{name: name, dir: dir}
	conf := filepath.Join(c.work, name+".conf")
	var ready string
	switch name {
	case "lumen", "baseline":
		bin := c.lumen
		if name == "baseline" {
			bin = c.baseline
		}
		s.ae, s.port, s.web = "LUMEN", lumenDIMSE, fmt.Sprintf("http://127.0.0.1:%d/dicom-web", lumenHTTP)
		ready = fmt.Sprintf("http://127.0.0.1:%d/readyz", lumenHTTP)
		y := fmt.Sprintf("data_dir: %s\nhttp:\n  addr: 127.0.0.1:%d\ndimse:\n  addr: 127.0.0.1:%d\n  peers:\n    - ae_title: SINK\n      host: 127.0.0.1\n      port: %d\nlog:\n  level: warn\n",
			s.dir, lumenHTTP, lumenDIMSE, sinkPort) + c.lumenIndex + c.lumenConfig
		if err := os.WriteFile(conf, []byte(y), 0o644); err != nil {
			return nil, err
		}
		s.cmd = exec.Command(bin, "serve", "--config", conf)
	case "orthanc":
		s.ae, s.port, s.web = "ORTHANC", orthancDIMSE, fmt.Sprintf("http://127.0.0.1:%d/dicom-web", orthancHTTP)
		ready = fmt.Sprintf("http://127.0.0.1:%d/system", orthancHTTP)
		j := fmt.Sprintf(`{ "Name": "bench", "StorageDirectory": %q, "IndexDirectory": %q, "StorageCompression": false,
  "DicomAet": "ORTHANC", "DicomPort": %d, "DicomCheckCalledAet": false, "HttpPort": %d,
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "DicomAlwaysAllowMove": true, "DicomAlwaysAllowStore": true, "DicomAlwaysAllowGet": true, "DicomAlwaysAllowFind": true,
  "DicomModalities": { "sink": [ "SINK", "127.0.0.1", %d ] },
  "Plugins": [ %q ], "DicomWeb": { "Enable": true, "Root": "/dicom-web/" } }`,
			s.dir, s.dir, orthancDIMSE, orthancHTTP, sinkPort, c.plugin)
		if err := os.WriteFile(conf, []byte(j), 0o644); err != nil {
			return nil, err
		}
		s.cmd = exec.Command(c.orthanc, conf)
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	logf, err := os.OpenFile(filepath.Join(c.work, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { s.cmd.Wait(); logf.Close() }()
	for i := 0; ; i++ {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && dicomUp(s.port) {
				return s, nil
			}
		}
		if i == 240 {
			s.stop()
			return nil, fmt.Errorf("%s did not start (see %s.log)", name, name)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// dicomUp tells whether something listens on the DICOM port.
func dicomUp(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stop ends the server and waits until its ports are free.
func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() {
		for s.cmd.ProcessState == nil && processAlive(s.cmd.Process.Pid) {
			time.Sleep(50 * time.Millisecond)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	for i := 0; i < 100 && dicomUp(s.port); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := statFields(b)
	return len(f) > 0 && f[0] != "Z"
}

// statFields returns the fields of /proc/PID/stat after the command name: state is
// the first (field 3 of proc(5)).
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// clockTick is the kernel's USER_HZ, 100 on Linux for every architecture Go runs on.
const clockTick = 100

// cpu returns the server's user plus system CPU time so far.
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := statFields(b)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	k, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	return time.Duration(u+k) * time.Second / clockTick
}

// settledCPU waits until the server's CPU time stops growing (background work such as
// thumbnails done), at most 15 s, and returns it.
func (s *server) settledCPU() time.Duration {
	last := s.cpu()
	for i := 0; i < 30; i++ {
		time.Sleep(500 * time.Millisecond)
		now := s.cpu()
		if now-last < 10*time.Millisecond {
			return now
		}
		last = now
	}
	return last
}

// peakRSS is the server's high-water resident set in bytes.
func (s *server) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// dcmtk runs a DCMTK tool with TCP_NODELAY set and returns an error carrying its output
// when it fails or prints an error line. Without it, the tool sends with Nagle's
// algorithm on: it holds each small write until what it sent before is acknowledged,
// which a server that delays its acknowledgements makes last ~40 ms per exchange.
func dcmtk(ctx context.Context, name string, args ...string) error {
	return dcmtkNagle(ctx, false, name, args...)
}

// dcmtkNagle is dcmtk, with Nagle's algorithm left on in the tool (DCMTK's default) when
// nagle is set.
func dcmtkNagle(ctx context.Context, nagle bool, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	nodelay := "TCP_NODELAY=1"
	if nagle {
		nodelay = "TCP_NODELAY=0"
	}
	cmd.Env = append(os.Environ(), nodelay)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, tail(out))
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E:") {
			return fmt.Errorf("%s: %s", name, tail(out))
		}
	}
	return nil
}

func tail(b []byte) string {
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}
