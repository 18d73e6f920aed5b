package ctlmetrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// poolMetric is one statistic of a connection pool, read at scrape time.
type poolMetric[S any] struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(S) float64
}

// poolCollector reports a pool's statistics at scrape time (one cheap
// read of the pool's counters per scrape).
type poolCollector[S any] struct {
	stat    func() S
	metrics []poolMetric[S]
}

func (c *poolCollector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

func (c *poolCollector[S]) Collect(ch chan<- prometheus.Metric) {
	s := c.stat()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(s))
	}
}

func poolDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)
}

// newPostgresPoolCollector reports pgxpool's statistics.
func newPostgresPoolCollector(db *pgxpool.Pool) prometheus.Collector {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	type s = *pgxpool.Stat
	return &poolCollector[s]{stat: db.Stat, metrics: []poolMetric[s]{
		{poolDesc("postgres_pool_acquired_connections", "Postgres connections in use."), gauge,
			func(s s) float64 { return float64(s.AcquiredConns()) }},
		{poolDesc("postgres_pool_idle_connections", "Idle Postgres connections in the pool."), gauge,
			func(s s) float64 { return float64(s.IdleConns()) }},
		{poolDesc("postgres_pool_constructing_connections", "Postgres connections being opened."), gauge,
			func(s s) float64 { return float64(s.ConstructingConns()) }},
		{poolDesc("postgres_pool_connections", "Postgres connections in the pool (acquired, idle and being opened)."), gauge,
			func(s s) float64 { return float64(s.TotalConns()) }},
		{poolDesc("postgres_pool_max_connections", "Most connections the Postgres pool opens."), gauge,
			func(s s) float64 { return float64(s.MaxConns()) }},
		{poolDesc("postgres_pool_acquires_total", "Connections acquired from the Postgres pool."), counter,
			func(s s) float64 { return float64(s.AcquireCount()) }},
		{poolDesc("postgres_pool_acquire_waits_total", "Acquires that found no idle connection and waited "+
			"(for a new one or a released one)."), counter,
			func(s s) float64 { return float64(s.EmptyAcquireCount()) }},
		{poolDesc("postgres_pool_acquire_wait_seconds_total", "Time acquires spent waiting for a connection."), counter,
			func(s s) float64 { return s.EmptyAcquireWaitTime().Seconds() }},
		{poolDesc("postgres_pool_canceled_acquires_total", "Acquires canceled by their context (a request that gave up)."), counter,
			func(s s) float64 { return float64(s.CanceledAcquireCount()) }},
	}}
}

// newRedisPoolCollector reports go-redis's pool statistics (summed over
// the nodes of a Cluster).
func newRedisPoolCollector(rdb redis.UniversalClient) prometheus.Collector {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	type s = *redis.PoolStats
	return &poolCollector[s]{stat: rdb.PoolStats, metrics: []poolMetric[s]{
		{poolDesc("redis_pool_hits_total", "Redis commands that found an idle connection in the pool."), counter,
			func(s s) float64 { return float64(s.Hits) }},
		{poolDesc("redis_pool_misses_total", "Redis commands that found no idle connection (and opened or waited for one)."), counter,
			func(s s) float64 { return float64(s.Misses) }},
		{poolDesc("redis_pool_timeouts_total", "Redis commands that timed out waiting for a connection."), counter,
			func(s s) float64 { return float64(s.Timeouts) }},
		{poolDesc("redis_pool_waits_total", "Redis commands that waited for a connection."), counter,
			func(s s) float64 { return float64(s.WaitCount) }},
		{poolDesc("redis_pool_connections", "Redis connections in the pool."), gauge,
			func(s s) float64 { return float64(s.TotalConns) }},
		{poolDesc("redis_pool_idle_connections", "Idle Redis connections in the pool."), gauge,
			func(s s) float64 { return float64(s.IdleConns) }},
		{poolDesc("redis_pool_stale_connections_total", "Stale Redis connections removed from the pool."), counter,
			func(s s) float64 { return float64(s.StaleConns) }},
	}}
}
