package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// retrievalLimits measures, for -retrieval, the ceilings of the retrieval figures:
// loopback TCP with 1 and 4 connections, and DCMTK storescu sending CT study 2 to
// storescp, which the C-MOVE figure sends to: storescp --ignore (the running sink) and
// storescp storing the files.
func retrievalLimits(c *cfg, t *table, k *corpus) error {
	for _, n := range []int{1, 4} {
		v, err := loopback(n, 2*time.Second)
		if err != nil {
			return err
		}
		t.addLimit(fmt.Sprintf("loop%d", n), fmt.Sprintf("loopback TCP, %d connection(s), MiB/s", n), v)
	}
	const mib = 1 << 20
	send := func(port int) (float64, error) {
		t0 := time.Now()
		err := dcmtk(context.Background(), "storescu", "-aet", "BENCH", "-aec", "SINK", "127.0.0.1", fmt.Sprint(port), "+sd", "+r", k.ctDir(2))
		return float64(k.ctBytes[2]) / mib / time.Since(t0).Seconds(), err
	}
	v, err := send(sinkPort)
	if err != nil {
		return err
	}
	t.addLimit("scpignore", "storescu → storescp --ignore, one CT study, MiB/s", v)
	dir := filepath.Join(c.work, "storescp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer removeSettled(dir)
	scp := exec.Command("storescp", "-aet", "SINK", "-od", dir, fmt.Sprint(sinkPort+1))
	scp.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := scp.Start(); err != nil {
		return fmt.Errorf("storescp: %w", err)
	}
	defer func() { scp.Process.Kill(); scp.Wait() }()
	for i := 0; i < 100 && !dicomUp(sinkPort+1); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if v, err = send(sinkPort + 1); err != nil {
		return err
	}
	t.addLimit("scpstore", "storescu → storescp storing, one CT study, MiB/s", v)
	return nil
}

// roundRetrieval is one round of -retrieval on a server: the 4 CT studies stored with
// 4 associations, then the retrieval figures.
func roundRetrieval(c *cfg, t *table, k *corpus, name string) error {
	s, err := start(c, name)
	if err != nil {
		return err
	}
	defer s.stop()
	if err := storescu(s, k.ctDir(0), k.ctDir(1), k.ctDir(2), k.ctDir(3)); err != nil {
		return err
	}
	return retrievals(c, t, k, s)
}
