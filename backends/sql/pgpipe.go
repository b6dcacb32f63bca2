package sql

import (
	"context"
	"crypto/sha256"
	stdsql "database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pipelined PostgreSQL lookups. Each host has as many workers as its pool
// has connections. A worker takes the lookups waiting at that moment (up
// to pgMaxBatch), sends them on one connection in pipeline mode, each
// followed by its own Sync so that one failing query fails only itself,
// and hands every lookup its result. Lookups that arrive together thus
// share a write and a read on the connection, and the server reads them
// in one go, instead of one round trip each; under load that is most of
// the cost of a lookup (docs/performance.md). A lone lookup is sent at
// once, as before.

const (
	pgMaxBatch = 32
	// pgQueryTimeout bounds a batch whose lookups have no deadline:
	// Dovecot's SQL_QUERY_TIMEOUT_SECS.
	pgQueryTimeout = 60 * time.Second
)

var pgTextResults = []int16{pgx.TextFormatCode}

// pgConns is one host's pool and its workers.
type pgConns struct {
	pool   *pgxpool.Pool
	reqs   chan *pgReq // unbuffered: lookups wait here for a worker
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	names  sync.Map // static query text → prepared statement name
}

// pgReq is one lookup on its way through a worker.
type pgReq struct {
	ctx    context.Context
	text   string
	static bool // prepared once per connection; else sent with its text
	args   [][]byte
	limit  int
	sd     *pgconn.StatementDescription
	done   chan pgAnswer // buffered: a worker never waits for the caller
	answer bool          // set once the worker has answered
}

type pgAnswer struct {
	res *result
	err error
}

func (r *pgReq) reply(res *result, err error) {
	if !r.answer {
		r.answer = true
		r.done <- pgAnswer{res, err}
	}
}

func newPgConns(pool *pgxpool.Pool, workers int) *pgConns {
	h := &pgConns{pool: pool, reqs: make(chan *pgReq)}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for range workers {
		h.wg.Add(1)
		go h.worker()
	}
	return h
}

func (h *pgConns) query(ctx context.Context, q *query, text string, args []any, limit int) (*result, error) {
	r := &pgReq{ctx: ctx, text: text, static: q.isStat, limit: limit, done: make(chan pgAnswer, 1)}
	r.args = make([][]byte, len(args))
	for i, a := range args {
		r.args[i] = []byte(a.(string))
	}
	select {
	case h.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-h.ctx.Done():
		return nil, errClosed
	}
	select {
	case a := <-r.done:
		return a.res, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *pgConns) ping(ctx context.Context) error { return h.pool.Ping(ctx) }

func (h *pgConns) close() error {
	h.cancel()
	h.wg.Wait()
	h.pool.Close()
	return nil
}

// worker runs batches until close.
func (h *pgConns) worker() {
	defer h.wg.Done()
	batch := make([]*pgReq, 0, pgMaxBatch)
	for {
		select {
		case r := <-h.reqs:
			batch = append(batch[:0], r)
		case <-h.ctx.Done():
			return
		}
	drain:
		for len(batch) < pgMaxBatch {
			select {
			case r := <-h.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		h.runBatch(batch)
		clear(batch)
	}
}

// runBatch answers every lookup of batch: with its result, its own query
// error, or the error that broke the connection.
func (h *pgConns) runBatch(batch []*pgReq) {
	live := make([]*pgReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply(nil, err) // its caller has gone
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := batchContext(h.ctx, live)
	defer cancel()
	conn, err := h.pool.Acquire(ctx)
	if err == nil {
		err = h.pipeline(ctx, conn.Conn(), live)
		conn.Release() // a broken connection is dropped from the pool here
	}
	if err == nil {
		err = errors.New("pgsql: lookup left without an answer") // not reached: pipeline answers all
	}
	for _, r := range live {
		r.reply(nil, err) // those still waiting when the connection failed
	}
}

// batchContext ends with the batch's latest deadline (pgQueryTimeout when
// a lookup has none): a connection stuck past it is closed.
func batchContext(parent context.Context, live []*pgReq) (context.Context, context.CancelFunc) {
	var last time.Time
	for _, r := range live {
		d, ok := r.ctx.Deadline()
		if !ok {
			return context.WithTimeout(parent, pgQueryTimeout)
		}
		if d.After(last) {
			last = d
		}
	}
	return context.WithDeadline(parent, last)
}

// pipeline sends the lookups on c and reads their results in order. It
// returns an error only when the connection failed.
func (h *pgConns) pipeline(ctx context.Context, c *pgx.Conn, live []*pgReq) error {
	send := live[:0:0]
	for _, r := range live {
		if !r.static {
			send = append(send, r)
			continue
		}
		// pgx keeps the statements a connection has prepared: a round
		// trip only the first time.
		sd, err := c.Prepare(ctx, h.stmtName(r.text), r.text)
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe):
			r.reply(nil, err) // a bad query fails only itself
		case err != nil:
			return err
		default:
			r.sd = sd
			send = append(send, r)
		}
	}
	if len(send) == 0 {
		return nil
	}
	pl := c.PgConn().StartPipeline(ctx)
	for _, r := range send {
		if r.sd != nil {
			pl.SendQueryStatement(r.sd, r.args, nil, pgTextResults)
		} else {
			pl.SendQueryParams(r.text, r.args, nil, nil, pgTextResults)
		}
		pl.SendPipelineSync()
	}
	if err := pl.Flush(); err != nil {
		pl.Close()
		return err
	}
	var stale []string
	for _, r := range send {
		res, err := readPipelined(pl, r.limit)
		var pe *pgconn.PgError
		if err != nil && !errors.As(err, &pe) {
			pl.Close()
			return err
		}
		if pe != nil && r.sd != nil && (pe.Code == "0A000" || pe.Code == "26000") {
			stale = append(stale, r.sd.Name) // "cached plan must not change result type" and the like
		}
		r.reply(res, err)
	}
	if err := pl.Close(); err != nil {
		return err
	}
	for _, name := range stale {
		_ = c.Deallocate(ctx, name) // prepared again on next use
	}
	return nil
}

// readPipelined reads one lookup's result and the Sync after it. A
// *pgconn.PgError is the query's own failure (the pipeline goes on); any
// other error is the connection's.
func readPipelined(pl *pgconn.Pipeline, limit int) (*result, error) {
	x, err := pl.GetResults()
	var qerr error
	var res *result
	switch rr := x.(type) {
	case nil:
		if err == nil {
			err = errors.New("pgsql: pipeline ended early")
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return nil, err
		}
		qerr = err
	case *pgconn.ResultReader:
		res = &result{}
		for _, fd := range rr.FieldDescriptions() {
			res.cols = append(res.cols, fd.Name)
		}
		for rr.NextRow() {
			if limit >= 0 && len(res.rows) >= limit {
				continue // read, not kept
			}
			vals := rr.Values()
			row := make([]stdsql.NullString, len(vals))
			for i, v := range vals {
				if v != nil { // nil is NULL; an empty value is set and empty
					row[i] = stdsql.NullString{String: string(v), Valid: true}
				}
			}
			res.rows = append(res.rows, row)
		}
		// An error in the middle of the rows (a connection lost, a
		// division by zero) shows here, never as a short result.
		if _, err := rr.Close(); err != nil {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				return nil, err
			}
			res, qerr = nil, err
		}
	default:
		return nil, fmt.Errorf("pgsql: unexpected pipeline result %T", x)
	}
	if x, err := pl.GetResults(); err != nil {
		return nil, err
	} else if _, ok := x.(*pgconn.PipelineSync); !ok {
		return nil, fmt.Errorf("pgsql: pipeline out of step: %T instead of a sync", x)
	}
	return res, qerr
}

// stmtName names the prepared statement of a static query text.
func (h *pgConns) stmtName(text string) string {
	if n, ok := h.names.Load(text); ok {
		return n.(string)
	}
	sum := sha256.Sum256([]byte(text))
	n := "authd_" + hex.EncodeToString(sum[:12])
	h.names.Store(text, n)
	return n
}
