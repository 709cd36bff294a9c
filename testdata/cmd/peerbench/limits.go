package main

import (
	"fmt"
	"hash"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/lumenpacs/lumen/testdata/tools"
)

// settleTime is how long removed files' inodes stay in the way of new files once the
// removal is on disk: ext4 without a journal (the root file system of the benchmark
// machines) looks for a new file's inode past every inode freed in the last 5 s, and
// past every one freed since its inode table block was last written (300 s more while
// that block is dirty): recently_deleted() in fs/ext4/ialloc.c. A server storing right
// after thousands of removals (the previous server's store, the durable-puts limit's
// files) paid several tenths of a millisecond per file for it, a cost of the benchmark,
// not of the server (nor of ext4 with a journal, which skips the check).
const settleTime = 6 * time.Second

// removeSettled removes path and, when there was something to remove, writes the
// removal to disk (sync) and lets settleTime pass, so that the next measurement's new
// files do not step over the freed inodes.
func removeSettled(path string) error {
	if _, err := os.Lstat(path); err != nil {
		return nil
	}
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	syscall.Sync()
	time.Sleep(settleTime)
	return nil
}

// durablePuts measures what the disk under dir can durably store with writers
// concurrent writers: files of size bytes, each created under a temporary name,
// written, fsynced, renamed into one of 16 directories and that directory fsynced, the
// steps a store must take before it may acknowledge. It returns puts per second and the
// CPU time (user and system, of this process, which does nothing else meanwhile) per
// put in ms: what storing a file durably costs on this machine (nearly all of it the
// kernel's), the floor under a server's CPU per stored instance. The files stay until
// the run ends (see start).
//
// On the benchmark machines (virtual machines whose free memory the host takes back,
// free page reporting) that CPU depends on the guest's memory: a new page-cache page
// taken from free memory costs a host fault, one reclaimed from a full page cache does
// not. A 512 KiB put cost 1.2–1.7 ms with most memory free and 0.35–0.55 ms once the
// page cache had filled it (2026-12-04); the floor is measured in each round for that
// reason.
func durablePuts(dir string, writers, size int, d time.Duration) (float64, float64, error) {
	root, err := os.MkdirTemp(dir, fmt.Sprintf("puts-%d-%d-", writers, size))
	if err != nil {
		return 0, 0, err
	}
	dirs := make([]*os.File, 16)
	for i := range dirs {
		p := filepath.Join(root, fmt.Sprintf("%02x", i))
		if err := os.MkdirAll(p, 0o755); err != nil {
			return 0, 0, err
		}
		f, err := os.Open(p)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		dirs[i] = f
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var wg sync.WaitGroup
	counts := make([]int, writers)
	errs := make([]error, writers)
	deadline := time.Now().Add(d)
	t0, c0 := time.Now(), tools.CPUTime(syscall.RUSAGE_SELF)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				dd := dirs[(w*7+n)%len(dirs)]
				tmp, err := os.CreateTemp(dd.Name(), ".put-")
				if err == nil {
					_, err = tmp.Write(data)
				}
				if err == nil {
					err = tmp.Sync()
				}
				if tmp != nil {
					if cerr := tmp.Close(); err == nil {
						err = cerr
					}
				}
				if err == nil {
					err = os.Rename(tmp.Name(), filepath.Join(dd.Name(), fmt.Sprintf("w%d-%d", w, n)))
				}
				if err == nil {
					err = dd.Sync()
				}
				if err != nil {
					errs[w] = err
					return
				}
				counts[w]++
			}
		}(w)
	}
	wg.Wait()
	el, cpu := time.Since(t0), tools.CPUTime(syscall.RUSAGE_SELF)-c0
	total := 0
	for w := range counts {
		if errs[w] != nil {
			return 0, 0, errs[w]
		}
		total += counts[w]
	}
	return float64(total) / el.Seconds(), ms(cpu) / float64(total), nil
}

// loopback measures TCP throughput on 127.0.0.1 with conns connections, each sender
// writing 1 MiB buffers and each receiver reading into a 1 MiB buffer: the ceiling of
// any HTTP or DICOM transfer here. It returns MiB/s.
func loopback(conns int, d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1<<20)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	var wg sync.WaitGroup
	got := make([]int64, conns)
	var ferr error
	var mu sync.Mutex
	t0 := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				mu.Lock()
				ferr = err
				mu.Unlock()
				return
			}
			defer c.Close()
			c.SetReadDeadline(t0.Add(d))
			buf := make([]byte, 1<<20)
			for {
				n, err := c.Read(buf)
				got[i] += int64(n)
				if err != nil {
					return
				}
			}
		}(i)
	}
	wg.Wait()
	if ferr != nil {
		return 0, ferr
	}
	var total int64
	for _, n := range got {
		total += n
	}
	return float64(total) / (1 << 20) / time.Since(t0).Seconds(), nil
}

// hashRate is the throughput of one core in MiB/s of the hash h makes, fed 16 KiB at a
// time (a C-STORE's PDV payloads).
func hashRate(h hash.Hash, d time.Duration) float64 {
	buf := make([]byte, 16<<10)
	n := 0
	t0 := time.Now()
	for time.Since(t0) < d {
		for range 64 {
			h.Write(buf)
		}
		n++
	}
	h.Sum(nil)
	return float64(n) / time.Since(t0).Seconds()
}
