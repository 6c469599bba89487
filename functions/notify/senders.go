package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/smithy-go"
)

// Destination kinds.
const (
	kindWebhook = "webhook"
	kindSlack   = "slack"
	kindSNS     = "sns"
)

// secretPrefix marks a Standard Webhooks symmetric signing secret.
const secretPrefix = "whsec_"

// newSigningSecret is a fresh per-destination secret: whsec_ and 32
// random bytes in base64 (the specification asks for 24 to 64).
func newSigningSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// sign is the Standard Webhooks signature of one attempt:
// "v1," + base64(HMAC-SHA256(secret, "<id>.<timestamp>.<body>")).
func sign(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return "", fmt.Errorf("signing secret is not base64: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// result is what one attempt came to.
type result struct {
	status     int           // HTTP status, 0 if none came back
	retryAfter time.Duration // the receiver's Retry-After, if any
	err        error         // nil on success
	permanent  bool          // do not retry
	gone       bool          // disable the destination (410, or a deleted SNS topic)
}

// label is the status label of the attempts metric.
func (r result) label() string {
	switch {
	case r.err == nil:
		return "2xx"
	case r.status == http.StatusGone || r.gone:
		return "410"
	case r.status == http.StatusTooManyRequests:
		return "429"
	case r.status >= 500:
		return "5xx"
	case r.status >= 300:
		return "4xx"
	case errors.Is(r.err, context.DeadlineExceeded) || isTimeout(r.err):
		return "timeout"
	}
	return "error"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// classify turns an HTTP answer into a result: 2xx delivered; 410 gone;
// 408, 429 and 5xx retried (429 and 503 after their Retry-After); other
// 3xx and 4xx fail at once (redirects are not followed: a receiver that
// moved must be given its new URL).
func classify(resp *http.Response, now time.Time) result {
	r := result{status: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return r
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	r.err = fmt.Errorf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	switch s := resp.StatusCode; {
	case s == http.StatusGone:
		r.permanent, r.gone = true, true
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	case s == http.StatusRequestTimeout || s >= 500:
	default:
		r.permanent = true
	}
	return r
}

// parseRetryAfter reads delay-seconds or an HTTP date (0 if neither).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// senders sends deliveries: webhooks and Slack over HTTP, SNS through the
// AWS SDK.
type senders struct {
	cfg    Config
	now    func() time.Time
	client *http.Client

	mu  sync.Mutex
	sns map[string]*sns.Client // by region
}

func newSenders(cfg Config, now func() time.Time) *senders {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivate {
		// Checked on the address actually dialled, after DNS, so a name
		// that resolves to an internal address (or is rebound to one)
		// cannot reach inside the cluster.
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if !publicAddr(ap.Addr()) {
				return fmt.Errorf("%s is not a public address: notify sends only to public receivers", ap.Addr())
			}
			return nil
		}
	}
	return &senders{cfg: cfg, now: now, sns: map[string]*sns.Client{}, client: &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: cfg.SendTimeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// publicAddr says whether a is an address on the public internet.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !cgnat.Contains(a)
}

// checkURL refuses a webhook or Slack URL notify would not send to.
func checkURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("want an absolute http(s) URL, got %q", raw)
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not accepted")
	}
	if allowPrivate {
		return nil
	}
	if u.Scheme != "https" {
		return errors.New("must be https")
	}
	if ap, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !publicAddr(ap) {
		return fmt.Errorf("%s is not a public address", ap)
	}
	if h := strings.ToLower(u.Hostname()); h == "localhost" || strings.HasSuffix(h, ".local") || strings.HasSuffix(h, ".internal") || strings.HasSuffix(h, ".svc") || strings.Contains(h, ".svc.") {
		return fmt.Errorf("%s is not a public host", h)
	}
	return nil
}

var snsARN = regexp.MustCompile(`^arn:aws[a-z-]*:sns:([a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)

// checkARN refuses what is not an SNS topic ARN.
func checkARN(arn string) error {
	if !snsARN.MatchString(arn) {
		return fmt.Errorf("want an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:alerts, got %q", arn)
	}
	return nil
}

// delivery is what a claimed delivery sends.
type delivery struct {
	notification, destination, game string
	typ                             string
	event                           []byte
	kind, target, secret            string
}

func (s *senders) send(ctx context.Context, d delivery) result {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
	defer cancel()
	switch d.kind {
	case kindWebhook:
		return s.webhook(ctx, d)
	case kindSlack:
		msg, err := slackMessage(d.event)
		if err != nil {
			return result{err: err, permanent: true}
		}
		return s.post(ctx, d.target, "application/json", msg, nil)
	case kindSNS:
		return s.publish(ctx, d)
	}
	return result{err: fmt.Errorf("unknown destination kind %q", d.kind), permanent: true}
}

// webhook POSTs the structured CloudEvent signed per Standard Webhooks:
// webhook-id is the notification's id on every attempt, the timestamp and
// signature are the attempt's own.
func (s *senders) webhook(ctx context.Context, d delivery) result {
	ts := s.now().Unix()
	sig, err := sign(d.secret, d.notification, ts, d.event)
	if err != nil {
		return result{err: err, permanent: true}
	}
	return s.post(ctx, d.target, "application/cloudevents+json; charset=utf-8", d.event, http.Header{
		"Webhook-Id":        {d.notification},
		"Webhook-Timestamp": {strconv.FormatInt(ts, 10)},
		"Webhook-Signature": {sig},
	})
}

func (s *senders) post(ctx context.Context, target, contentType string, body []byte, h http.Header) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return result{err: err, permanent: true}
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "gamemetrics-notify/1")
	resp, err := s.client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	r := classify(resp, s.now())
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return r
}

// publish sends the notification to an SNS topic: the CloudEvent as the
// message, its type as an attribute; a FIFO topic gets the notification
// id as MessageDeduplicationId (SNS drops a repeat within 5 minutes) and
// the game as MessageGroupId.
func (s *senders) publish(ctx context.Context, d delivery) result {
	m := snsARN.FindStringSubmatch(d.target)
	if m == nil {
		return result{err: fmt.Errorf("not an SNS topic ARN: %s", d.target), permanent: true}
	}
	cl, err := s.snsClient(ctx, m[1])
	if err != nil {
		return result{err: err}
	}
	in := &sns.PublishInput{
		TopicArn: aws.String(d.target),
		Message:  aws.String(string(d.event)),
	}
	if m[2] != "" {
		in.MessageDeduplicationId = aws.String(d.notification)
		in.MessageGroupId = aws.String(d.game)
	}
	_, err = cl.Publish(ctx, in)
	if err == nil {
		return result{status: http.StatusOK}
	}
	r := result{err: err}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		r.status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NotFound":
			r.permanent, r.gone = true, true
		case "Throttled", "Throttling", "ThrottlingException", "KMSThrottling", "InternalError", "InternalFailure", "ServiceUnavailable":
		default:
			if r.status >= 400 && r.status < 500 {
				r.permanent = true
			}
		}
	}
	return r
}

// snsClient is the SNS client of one region, made on first use: a
// deployment without SNS destinations never needs AWS credentials.
func (s *senders) snsClient(ctx context.Context, region string) (*sns.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.sns[region]; c != nil {
		return c, nil
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region), config.WithRetryMaxAttempts(1))
	if err != nil {
		return nil, fmt.Errorf("AWS configuration for SNS: %w", err)
	}
	c := sns.NewFromConfig(cfg, func(o *sns.Options) {
		if s.cfg.SNSEndpoint != "" {
			o.BaseEndpoint = aws.String(s.cfg.SNSEndpoint)
		}
		o.HTTPClient = s.client
	})
	s.sns[region] = c
	return c, nil
}

// slackMessage is a Slack incoming-webhook message for a notification:
// text (the notification's summary, shown in previews) and blocks (what
// fired, the value, the threshold or baseline, the window, a link).
func slackMessage(ev []byte) ([]byte, error) {
	var e struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ev, &e); err != nil {
		return nil, err
	}
	type text struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type     string `json:"type"`
		Text     *text  `json:"text,omitempty"`
		Fields   []text `json:"fields,omitempty"`
		Elements []text `json:"elements,omitempty"`
	}
	md := func(s string) text { return text{Type: "mrkdwn", Text: s} }
	var msg struct {
		Text   string  `json:"text"`
		Blocks []block `json:"blocks"`
	}
	switch e.Type {
	case TypeAlertFiring, TypeAlertResolved:
		var d alertData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return nil, err
		}
		icon := ":rotating_light:"
		if d.State == stateResolved {
			icon = ":white_check_mark:"
		}
		msg.Text = d.Summary
		fields := []text{md("*Value*\n" + num(d.Value)), md("*Window*\n" + d.Alert.Window + " from " + d.Window.Label)}
		switch {
		case d.Threshold != nil:
			fields = append(fields, md(fmt.Sprintf("*Threshold*\n%s %s", d.Alert.Condition.Type, num(*d.Threshold))))
		case d.Reference != nil:
			pct := "from 0"
			if d.Reference.ChangePercent != nil {
				pct = fmt.Sprintf("%+.1f%%", *d.Reference.ChangePercent)
			}
			fields = append(fields, md(fmt.Sprintf("*Change*\n%s against %s (%s)", pct, d.Reference.Window.Label, num(d.Reference.Value))))
		case d.Baseline != nil:
			fields = append(fields, md(fmt.Sprintf("*Baseline*\n%s ± %s, score %+.1f (%s)", num(d.Baseline.Median), num(d.Baseline.Spread), d.Baseline.Score, d.Baseline.Kind)))
		}
		fields = append(fields, md("*Metric*\n"+d.Alert.Metric))
		msg.Blocks = []block{{Type: "section", Text: &text{Type: "mrkdwn", Text: icon + " *" + slackEscape(d.Summary) + "*"}}, {Type: "section", Fields: fields}}
		if d.Dashboard != "" {
			msg.Blocks = append(msg.Blocks, block{Type: "section", Text: &text{Type: "mrkdwn", Text: "<" + d.Dashboard + "|Open the dashboard>"}})
		}
	case TypePlayer:
		var d playerData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return nil, err
		}
		var ev struct {
			Type string    `json:"type"`
			Time time.Time `json:"time"`
		}
		json.Unmarshal(d.Event, &ev)
		msg.Text = d.Summary
		msg.Blocks = []block{{Type: "section", Text: &text{Type: "mrkdwn", Text: ":video_game: *" + slackEscape(d.Rule.Name) + "*"}},
			{Type: "section", Fields: []text{md("*Player*\n" + slackEscape(d.Player)), md("*Event*\n" + strings.TrimPrefix(ev.Type, "com.gamemetrics.")),
				md("*At*\n" + ev.Time.UTC().Format(time.RFC3339)), md("*Game*\n" + d.Game)}}}
	default:
		var d struct {
			Summary   string `json:"summary"`
			Dashboard string `json:"dashboard"`
		}
		json.Unmarshal(e.Data, &d)
		msg.Text = d.Summary
		msg.Blocks = []block{{Type: "section", Text: &text{Type: "mrkdwn", Text: slackEscape(d.Summary)}}}
		if d.Dashboard != "" {
			msg.Blocks = append(msg.Blocks, block{Type: "section", Text: &text{Type: "mrkdwn", Text: "<" + d.Dashboard + "|Open the dashboard>"}})
		}
	}
	msg.Blocks = append(msg.Blocks, block{Type: "context", Elements: []text{md("GameMetrics · " + strings.TrimPrefix(e.Type, "com.gamemetrics."))}})
	return json.Marshal(msg)
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
