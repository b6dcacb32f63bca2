package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the three endpoints of the metrics { } listener:
//
//	/metrics  the text exposition of reg
//	/healthz  200 while the process serves HTTP at all (liveness)
//	/readyz   200 when ready returns nil, else 503 with its error
//	          (every backend answered its last check)
//
// ready may be nil (always ready).
func Handler(reg *prometheus.Registry, ready func() error, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{log},
		// Serve what could be gathered rather than nothing: one broken
		// collector must not blind the whole dashboard.
		ErrorHandling: promhttp.ContinueOnError,
		// Counts scrape failures into promhttp_metric_handler_errors_total.
		Registry: reg,
		// A slow scrape must not pile up goroutines.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if ready != nil {
			if err := ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// Handler is Handler for the registry m was built on, with Options.Ready.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	return Handler(m.reg, m.ready, log)
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Error("metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// Server is the HTTP listener of the metrics { } section.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	once sync.Once
}

// Listen binds addr (host:port, or unix:/path) and serves h on it in the
// background until Shutdown. Binding happens before Listen returns, so a
// port in use is reported to the caller at start or reload, not lost in a
// goroutine.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	network, address := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", p
		if err := removeStaleSocket(p); err != nil {
			return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
		}
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	if network == "unix" {
		// Owner and group, like the gRPC socket: a local Prometheus agent
		// joins authd's group.
		if err := os.Chmod(address, 0o660); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
		}
	}
	s := &Server{
		ln:   ln,
		done: make(chan struct{}),
		srv: &http.Server{
			Handler: h,
			// Slowloris guards: the endpoint is small and scraped by
			// machines, so tight limits cost nothing.
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", addr, "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Shutdown stops accepting, lets running scrapes finish until ctx ends,
// and waits for the serving goroutine.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		err = s.srv.Shutdown(ctx)
		if err != nil {
			_ = s.srv.Close()
		}
		<-s.done
	})
	return err
}

// removeStaleSocket removes a socket file left by a process that died, so
// that bind succeeds; a socket another live process answers on is kept
// and reported instead of stolen.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return fmt.Errorf("another process is listening on %s", path)
	}
	return os.Remove(path)
}
