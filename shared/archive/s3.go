// Package archive is GameMetrics' S3 adapter: a small object-store client
// (Open, Put, Get, List, Delete) over aws-sdk-go-v2, the archive format of
// raw events (gzip NDJSON structured CloudEvents plus a manifest, read back
// with ReadManifest and ReadEvents), the raw event rows of PostgreSQL's
// events table in and out of that format (Row), and the export of one day of
// a game's raw events as NDJSON whether the day is hot in PostgreSQL,
// archived in S3 or both (WriteDay).
//
// The client works with AWS S3 (credentials from the default chain, so IRSA
// works on EKS) and with S3-compatible servers such as the local stack's
// gofakes3 or versitygw (custom endpoint, path-style addressing).
package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/settings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Config says where the bucket is. Parse it once in main (ConfigFromEnv) and
// pass it down.
type Config struct {
	// Bucket holds every object (required).
	Bucket string
	// Endpoint overrides the S3 endpoint URL (e.g. http://127.0.0.1:9000 for
	// a local server). Empty means AWS's regional endpoint.
	Endpoint string
	// Region is the signing region; empty means the default chain's region,
	// or us-east-1 when none is configured.
	Region string
	// ForcePathStyle addresses objects as endpoint/bucket/key instead of
	// bucket.endpoint/key; most S3-compatible servers need it.
	ForcePathStyle bool
	// AccessKey and SecretKey (and SessionToken), when both set, are used
	// as static credentials (local stack, tests). Empty means the AWS
	// default credential chain (environment, shared config, web identity /
	// IRSA, instance role).
	AccessKey, SecretKey, SessionToken string
}

// ConfigFromEnv reads S3_BUCKET, S3_ENDPOINT, S3_REGION and
// S3_FORCE_PATH_STYLE. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN are read through getenv too, so a caller that passes its
// own environment (`gamemetrics dev` pointing functions at the local stack)
// is honoured; when they are unset, credentials come from the default chain
// (web identity / IRSA on EKS, shared config, instance role).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := settings.From(getenv)
	c := Config{
		Bucket:       env.String("S3_BUCKET", ""),
		Endpoint:     env.String("S3_ENDPOINT", ""),
		Region:       env.String("S3_REGION", ""),
		AccessKey:    getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: getenv("AWS_SESSION_TOKEN"),
	}
	// A custom endpoint is almost always an S3-compatible server that does
	// not do virtual-hosted buckets.
	c.ForcePathStyle = env.Bool("S3_FORCE_PATH_STYLE", c.Endpoint != "")
	return c, env.Err()
}

// ErrNotFound is returned (wrapped) by Get and Head for a missing key.
var ErrNotFound = errors.New("archive: object not found")

// Client reads and writes objects in one bucket. It is safe for concurrent
// use.
type Client struct {
	s3     *s3.Client
	bucket string
}

// Object describes a stored object.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Open builds a client for cfg. It does not contact S3.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("archive: no bucket configured (S3_BUCKET)")
	}
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" && cfg.SecretKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("archive: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	// Checksums only where S3 requires them: S3-compatible servers do not
	// all understand the SDK's default trailing CRC checksums, and our own
	// manifests carry SHA-256 sums verified end to end.
	awsCfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	awsCfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
	})
	return &Client{s3: client, bucket: cfg.Bucket}, nil
}

// Bucket is the bucket the client works in.
func (c *Client) Bucket() string { return c.bucket }

// Put stores body at key, replacing any object there. contentType may be
// empty (application/octet-stream).
func (c *Client) Put(ctx context.Context, key string, body []byte, contentType string) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(c.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if _, err := c.s3.PutObject(ctx, in); err != nil {
		return fmt.Errorf("archive: put %s: %w", key, err)
	}
	return nil
}

// Get returns the whole object at key, or an error wrapping ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("archive: get %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("archive: get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("archive: read %s: %w", key, err)
	}
	return b, nil
}

// Exists reports whether an object is stored at key.
func (c *Client) Exists(ctx context.Context, key string) (bool, error) {
	_, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("archive: head %s: %w", key, err)
}

// List returns every object whose key starts with prefix, in key order.
func (c *Client) List(ctx context.Context, prefix string) ([]Object, error) {
	var objs []Object
	p := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{
		Bucket: aws.String(c.bucket),
		Prefix: aws.String(prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("archive: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			objs = append(objs, Object{
				Key:          aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
	}
	return objs, nil
}

// Delete removes the objects at keys (missing keys are not an error), in
// batches of up to 1000 per request.
func (c *Client) Delete(ctx context.Context, keys ...string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		batch := keys[:n]
		keys = keys[n:]
		if len(batch) == 1 {
			if _, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(batch[0])}); err != nil && !isNotFound(err) {
				return fmt.Errorf("archive: delete %s: %w", batch[0], err)
			}
			continue
		}
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := c.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(c.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("archive: delete %d objects: %w", len(batch), err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			return fmt.Errorf("archive: delete %s: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "404":
			return true
		}
	}
	return false
}
