package metering

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure a Runner: the producer and the sender of one
// control-plane replica.
type Options struct {
	// DB holds usage_minutes and meter_reports; required.
	DB *pgxpool.Pool
	// Client sends meter events (a *stripe.Client); required.
	Client Client
	// Window is the usage window of one report; 0 means DefaultWindow.
	Window time.Duration
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
	// Producer and Sender tune each half; their DB, Client, Window and
	// Logger are taken from the fields above.
	Producer ProducerOptions
	Sender   SenderOptions
}

// Runner runs a Producer and a Sender together; the Sender is woken as
// soon as the Producer has written rows. Every control-plane replica may
// run one.
type Runner struct {
	producer *Producer
	sender   *Sender
}

// New checks opts and returns a Runner; Run starts it.
func New(opts Options) (*Runner, error) {
	if opts.DB == nil || opts.Client == nil {
		return nil, errors.New("metering: a database and a client are required")
	}
	if opts.Window == 0 {
		opts.Window = DefaultWindow
	}
	so := opts.Sender
	so.DB, so.Client, so.Window, so.Logger = opts.DB, opts.Client, opts.Window, opts.Logger
	s, err := NewSender(so)
	if err != nil {
		return nil, err
	}
	po := opts.Producer
	po.DB, po.Window, po.Logger = opts.DB, opts.Window, opts.Logger
	if next := po.Produced; next != nil {
		po.Produced = func() { s.Wake(); next() }
	} else {
		po.Produced = s.Wake
	}
	p, err := NewProducer(po)
	if err != nil {
		return nil, err
	}
	return &Runner{producer: p, sender: s}, nil
}

// Producer returns the runner's producer (for Repair).
func (r *Runner) Producer() *Producer { return r.producer }

// Sender returns the runner's sender (for its Lag).
func (r *Runner) Sender() *Sender { return r.sender }

// Run runs both until ctx is cancelled and returns ctx's error.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = r.producer.Run(ctx) }()
	go func() { defer wg.Done(); _ = r.sender.Run(ctx) }()
	wg.Wait()
	return ctx.Err()
}
