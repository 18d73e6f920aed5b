package metering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/billing/stripe"
	"github.com/tollgate/tollgate/services/store"
)

// Defaults of SenderOptions.
const (
	DefaultBatch          = 200
	DefaultConcurrency    = 16
	DefaultSenderInterval = time.Second
	DefaultCallTimeout    = 20 * time.Second
	// DefaultAccountRate is the most meter events per second one Sender
	// sends to one connected account: half of what Stripe allows with
	// single creates (about 1000/s), leaving room for the tenant's other
	// calls and for a second replica.
	DefaultAccountRate = 500
	// maxRetryDelay bounds the wait before a failed row is tried again.
	maxRetryDelay = 5 * time.Minute
	// maxErrorLen bounds the error text kept on a row.
	maxErrorLen = 1000
)

// billing's Stripe client is the Client in production.
var _ Client = (*stripe.Client)(nil)

// SenderOptions configure a Sender. Zero values take the defaults.
type SenderOptions struct {
	// DB holds meter_reports; required.
	DB *pgxpool.Pool
	// Client sends the meter events (a *stripe.Client); required.
	Client Client
	// Refused reports whether an error of Client is Stripe refusing the
	// event for good (a row is then marked refused with the error, and
	// not retried); anything else is retried with backoff. Nil means
	// stripe.Refused: a 4xx other than 409 and 429.
	Refused func(error) bool
	// Batch is the most rows one transaction claims; 0 means DefaultBatch.
	Batch int
	// Concurrency is the most meter events in flight; 0 means
	// DefaultConcurrency.
	Concurrency int
	// AccountRate is the most events per second sent to one connected
	// account; 0 means DefaultAccountRate, negative means no limit.
	AccountRate int
	// Interval is how often an idle Sender looks for pending rows (Wake
	// makes it look at once); 0 means DefaultSenderInterval.
	Interval time.Duration
	// CallTimeout bounds one meter event; 0 means DefaultCallTimeout.
	CallTimeout time.Duration
	// Window is the producer's window, to compute the lag (window end to
	// sent); 0 means DefaultWindow.
	Window time.Duration
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sender sends pending meter reports to Stripe. Any number may run (one
// per control-plane replica): each transaction claims its rows with FOR
// UPDATE SKIP LOCKED, so a row is in flight with one Sender at a time, and
// is marked in that transaction once Stripe has answered. A Sender that
// dies mid-batch leaves its rows pending; they are sent again under the
// same identifiers, which Stripe counts once.
type Sender struct {
	opts    SenderOptions
	log     *slog.Logger
	wake    chan struct{}
	lag     *LagRecorder
	limiter *accountLimiter
	stats   SenderStats

	mu sync.Mutex
	// retryAt holds rows whose last attempt failed and may be retried, and
	// when: a row that keeps failing waits longer, without holding up the
	// rows after it.
	retryAt map[int64]time.Time
}

// NewSender checks opts and returns a Sender; Run starts it.
func NewSender(opts SenderOptions) (*Sender, error) {
	if opts.DB == nil || opts.Client == nil {
		return nil, errors.New("metering sender: a database and a client are required")
	}
	if opts.Refused == nil {
		opts.Refused = stripe.Refused
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.AccountRate == 0 {
		opts.AccountRate = DefaultAccountRate
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultSenderInterval
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sender{opts: opts, log: opts.Logger, wake: make(chan struct{}, 1), lag: NewLagRecorder(0),
		limiter: newAccountLimiter(opts.AccountRate), retryAt: map[int64]time.Time{}}, nil
}

// Wake makes an idle Sender look for pending rows now.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Lag returns the recorder of this Sender's meter-event lag.
func (s *Sender) Lag() *LagRecorder { return s.lag }

// Stats returns this Sender's counts of marked rows, for metrics.
func (s *Sender) Stats() *SenderStats { return &s.stats }

// SenderStats counts the rows a Sender marked since it started, by
// outcome: the control plane's metrics read them (meter_reports itself
// keeps every row and has no index on its final states, so counting them
// there would scan the table). Read it with Snapshot.
type SenderStats struct {
	Sent    atomic.Int64
	Refused atomic.Int64
	Expired atomic.Int64
	// Retried are failed attempts left pending for a retry.
	Retried atomic.Int64
}

// Snapshot returns the counters by name (sent, refused, expired, retried).
func (s *SenderStats) Snapshot() map[string]int64 {
	return map[string]int64{"sent": s.Sent.Load(), "refused": s.Refused.Load(), "expired": s.Expired.Load(),
		"retried": s.Retried.Load()}
}

func (s *SenderStats) add(res Sent) {
	s.Sent.Add(int64(res.Sent))
	s.Refused.Add(int64(res.Refused))
	s.Expired.Add(int64(res.Expired))
	s.Retried.Add(int64(res.Failed))
}

// Sent counts the outcome of one Step.
type Sent struct {
	// Claimed is the number of rows claimed.
	Claimed int
	// Sent were accepted by Stripe and marked sent.
	Sent int
	// Refused were refused by Stripe and marked refused.
	Refused int
	// Expired were too old to send and marked expired.
	Expired int
	// Failed will be retried.
	Failed int
}

// Run sends until ctx is cancelled and returns ctx's error. It steps while
// there is work, waits Interval (or a Wake) when there is none, and backs
// off when every claimed row failed (Stripe or the network is down).
func (s *Sender) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		res, err := s.Step(ctx)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			s.log.Error("metering sender", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(backoff*2, time.Minute)
		case res.Claimed > 0 && res.Failed == res.Claimed:
			wait, backoff = backoff, min(backoff*2, time.Minute)
		case res.Claimed == s.opts.Batch:
			backoff = time.Second
			continue // more waiting
		default:
			backoff = time.Second
			wait = s.opts.Interval
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-time.After(wait):
		}
	}
	return ctx.Err()
}

// pendingRow is a claimed meter_reports row.
type pendingRow struct {
	id                                   int64
	identifier, account, customer, event string
	start                                time.Time
	seq                                  int
	value                                int64
	attempts                             int
	status, err                          string
	sentAt                               time.Time
}

// markGrace is how long a stopped Sender still has to mark the rows
// Stripe accepted before it stopped (a graceful stop then resends
// nothing; a crash resends them under the same identifiers).
const markGrace = 10 * time.Second

// Step claims up to Batch pending rows (oldest id first; rows waiting for
// a retry are left alone), sends them, and marks them in the claiming
// transaction: sent, refused, expired, or still pending with the error and
// one more attempt. When ctx ends mid-batch, the calls in flight are
// abandoned (their rows stay pending, untouched) and what Stripe answered
// is still marked, within markGrace.
func (s *Sender) Step(ctx context.Context) (Sent, error) {
	var (
		res     Sent
		claimed []*pendingRow
	)
	dbctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(markGrace, cancel) })
	defer stop()
	err := store.InTx(dbctx, s.opts.DB, func(tx pgx.Tx) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rows, err := tx.Query(dbctx, `SELECT id, identifier, stripe_account, stripe_customer, event_name, window_start,
				seq, value, attempts
			FROM meter_reports WHERE status = 'pending' AND id <> ALL($1::bigint[])
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, s.waiting(), s.opts.Batch)
		if err != nil {
			return fmt.Errorf("claim meter reports: %w", err)
		}
		claimed, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*pendingRow, error) {
			var p pendingRow
			err := r.Scan(&p.id, &p.identifier, &p.account, &p.customer, &p.event, &p.start, &p.seq, &p.value, &p.attempts)
			return &p, err
		})
		if err != nil {
			return fmt.Errorf("claim meter reports: %w", err)
		}
		res.Claimed = len(claimed)
		if len(claimed) == 0 {
			return nil
		}
		s.send(ctx, claimed)
		var (
			ids            []int64
			statuses, errs []string
			sentAt         []*time.Time
		)
		for _, p := range claimed {
			switch p.status {
			case "": // abandoned by a stop: left as it was
				continue
			case StatusSent:
				res.Sent++
				sentAt = append(sentAt, &p.sentAt)
			case StatusRefused:
				res.Refused++
				sentAt = append(sentAt, nil)
			case StatusExpired:
				res.Expired++
				sentAt = append(sentAt, nil)
			default:
				res.Failed++
				sentAt = append(sentAt, nil)
			}
			ids, statuses, errs = append(ids, p.id), append(statuses, p.status), append(errs, p.err)
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.Exec(dbctx, `UPDATE meter_reports m SET status = u.status, last_error = u.err,
				sent_at = u.sent_at, attempts = m.attempts + CASE WHEN u.status = 'expired' THEN 0 ELSE 1 END
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, status, err, sent_at)
			WHERE m.id = u.id`, ids, statuses, errs, sentAt); err != nil {
			return fmt.Errorf("mark meter reports: %w", err)
		}
		return nil
	})
	if err != nil {
		return Sent{}, fmt.Errorf("metering sender: %w", err)
	}
	s.settle(claimed)
	s.stats.add(res)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

// send sends the claimed rows, Concurrency at a time, and sets each row's
// outcome. The claimed rows are only recorded (lag, retry times) by settle,
// after the transaction committed.
func (s *Sender) send(ctx context.Context, claimed []*pendingRow) {
	expireBefore := s.opts.Now().Add(-MaxEventAge)
	sem := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	for _, p := range claimed {
		if p.start.Before(expireBefore) {
			p.status, p.err = StatusExpired, "window older than Stripe accepts for meter events (35 days)"
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue // abandoned: status ""
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.limiter.wait(ctx, p.account); err != nil {
				return // abandoned
			}
			cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
			err := s.opts.Client.MeterEvent(cctx, p.account, p.event, p.identifier, p.customer, p.value, p.start)
			cancel()
			switch {
			case err != nil && ctx.Err() != nil:
				// Abandoned by a stop: Stripe may have it or not; the row
				// stays pending and goes again under its identifier.
			case err == nil:
				p.status, p.err, p.sentAt = StatusSent, "", s.opts.Now()
			case s.opts.Refused(err):
				p.status, p.err = StatusRefused, truncate(err.Error())
			default:
				p.status, p.err = StatusPending, truncate(err.Error())
			}
		}()
	}
	wg.Wait()
}

// settle records a committed Step: the lag of the rows sent and when the
// failed ones may be tried again.
func (s *Sender) settle(claimed []*pendingRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for _, p := range claimed {
		switch p.status {
		case StatusSent:
			if p.seq == 0 {
				// Later sequences carry late usage: their lag is the
				// lateness of the usage, not of the sender.
				s.lag.Record(p.sentAt.Sub(p.start.Add(s.opts.Window)))
			}
		case StatusPending:
			s.retryAt[p.id] = now.Add(retryDelay(p.attempts + 1))
		}
	}
}

// waiting returns the ids of rows not to be retried yet.
func (s *Sender) waiting() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	out := make([]int64, 0, len(s.retryAt))
	for id, at := range s.retryAt {
		if now.Before(at) {
			out = append(out, id)
		} else {
			delete(s.retryAt, id)
		}
	}
	return out
}

// retryDelay is how long a row waits after its attempt-th failure.
func retryDelay(attempt int) time.Duration {
	d := time.Second
	for i := 1; i < attempt && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

func truncate(s string) string {
	if len(s) > maxErrorLen {
		return s[:maxErrorLen]
	}
	return s
}
