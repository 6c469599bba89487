package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	bolt "go.etcd.io/bbolt"
)

// Credentials of the local S3 server (it accepts any; these are what the
// stack hands to clients so the AWS SDK's signer has something to sign with).
const (
	S3AccessKey = "gamemetrics"
	S3SecretKey = "gamemetrics-local-secret"
)

func (s *Stack) startS3(cfg Config) (string, error) {
	var backend gofakes3.Backend
	if cfg.Ephemeral {
		backend = s3mem.New()
	} else {
		db, err := bolt.Open(filepath.Join(s.dir, "s3.bolt"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			return "", fmt.Errorf("open %s (is another `gamemetrics dev` running?): %w", filepath.Join(s.dir, "s3.bolt"), err)
		}
		s.closers = append(s.closers, db.Close)
		backend = s3bolt.New(db)
	}
	if err := backend.CreateBucket(s.S3Bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
		return "", fmt.Errorf("create bucket %s: %w", s.S3Bucket, err)
	}
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(true), gofakes3.WithTimeSkewLimit(0))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("s3 server stopped", "err", err)
		}
	}()
	s.closers = append(s.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	})
	ep := "http://" + l.Addr().String()
	s.log.Info("s3 (gofakes3) started", "endpoint", ep, "bucket", s.S3Bucket)
	return ep, nil
}
