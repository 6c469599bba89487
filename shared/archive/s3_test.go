package archive_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

func openClient(t *testing.T) *archive.Client {
	t.Helper()
	c, err := archive.Open(context.Background(), archive.Config{
		Bucket: stack.S3Bucket, Endpoint: stack.S3Endpoint, Region: "us-east-1", ForcePathStyle: true,
		AccessKey: devstack.S3AccessKey, SecretKey: devstack.S3SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientPutGetListDeleteAgainstTheLocalS3(t *testing.T) {
	ctx := context.Background()
	c := openClient(t)
	prefix := "test/" + t.Name() + "/"
	want := map[string]string{}
	for i := range 5 {
		k := fmt.Sprintf("%sobj-%02d", prefix, i)
		want[k] = fmt.Sprintf("body %d", i)
		if err := c.Put(ctx, k, []byte(want[k]), "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := c.List(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 5 {
		t.Fatalf("listed %d objects, want 5", len(objs))
	}
	var keys []string
	for _, o := range objs {
		b, err := c.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want[o.Key] || o.Size != int64(len(b)) {
			t.Errorf("%s: got %q (size %d), want %q", o.Key, b, o.Size, want[o.Key])
		}
		keys = append(keys, o.Key)
	}
	if ok, err := c.Exists(ctx, keys[0]); err != nil || !ok {
		t.Errorf("Exists(%s) = %v, %v", keys[0], ok, err)
	}
	if err := c.Delete(ctx, keys[:1]...); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, keys...); err != nil { // includes an already missing key
		t.Fatal(err)
	}
	if objs, err := c.List(ctx, prefix); err != nil || len(objs) != 0 {
		t.Errorf("after delete: %d objects, err %v", len(objs), err)
	}
	if _, err := c.Get(ctx, keys[0]); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("Get of a deleted key: %v, want ErrNotFound", err)
	}
	if ok, err := c.Exists(ctx, keys[0]); err != nil || ok {
		t.Errorf("Exists of a deleted key = %v, %v", ok, err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"S3_BUCKET": "b", "S3_ENDPOINT": "http://x:1", "S3_REGION": "eu-west-1"}
	c, err := archive.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "b" || c.Endpoint != "http://x:1" || c.Region != "eu-west-1" || !c.ForcePathStyle {
		t.Errorf("got %+v", c)
	}
	env["S3_FORCE_PATH_STYLE"] = "false"
	if c, _ := archive.ConfigFromEnv(func(k string) string { return env[k] }); c.ForcePathStyle {
		t.Errorf("S3_FORCE_PATH_STYLE=false ignored: %+v", c)
	}
	env["S3_FORCE_PATH_STYLE"] = "sometimes"
	if _, err := archive.ConfigFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "S3_FORCE_PATH_STYLE") {
		t.Errorf("a bad S3_FORCE_PATH_STYLE is not reported: %v", err)
	}
}
