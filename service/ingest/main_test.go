package ingest_test

import (
	"os"
	"testing"

	"github.com/lumenpacs/lumen/archive/s3/miniotest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	miniotest.StopShared()
	os.Exit(code)
}
