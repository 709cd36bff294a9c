package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lumenpacs/lumen/dcm/codec/openjpeg"
	"github.com/lumenpacs/lumen/render/jpegenc"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries a process exit status without printing more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "lumen:", err)
		os.Exit(2)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "lumen",
		Short:         "Lumen, a DICOM archive",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.String("config", "", "YAML configuration file (default: $LUMEN_CONFIG)")
	pf.String("data-dir", "", "data directory for the embedded store and index (key data_dir)")
	pf.String("log-level", "", "debug, info, warn or error (key log.level)")
	pf.String("log-format", "", "json or text (key log.format)")
	root.AddCommand(newServeCmd(), newImportCmd(), newFsckCmd(), newHealthcheckCmd(), newEchoCmd(), newStoreCmd(), newSendCmd(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "lumen", version)
			j2k := "not compiled in (built without cgo and -tags openjpeg)"
			if openjpeg.Available {
				j2k = "OpenJPEG " + openjpeg.Version()
			}
			fmt.Fprintln(cmd.OutOrStdout(), "JPEG 2000:", j2k)
			enc := jpegenc.Version()
			if !jpegenc.LibJPEG {
				enc += " (built without cgo and -tags libjpeg)"
			}
			fmt.Fprintln(cmd.OutOrStdout(), "JPEG encoder:", enc)
		},
	})
	return root
}

func newLogger(c *Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return nil, fmt.Errorf("config: log.level %q: %w", c.Log.Level, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.Log.Format) {
	case "json", "":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("config: log.format %q: want json or text", c.Log.Format)
}

// setup loads the configuration, builds the logger and opens the backends for a command.
func setup(cmd *cobra.Command) (*Config, *backends, error) {
	c, err := loadConfig(cmd.Flags())
	if err != nil {
		return nil, nil, err
	}
	log, err := newLogger(c, cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, err
	}
	b, err := openBackends(cmd.Context(), c, log, nil)
	if err != nil {
		return nil, nil, err
	}
	return c, b, nil
}
