package rules

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"crier/internal/diag"
)

// CronData is what a cron job's body template sees as dot.
type CronData struct {
	Name string    // the job's name
	Time time.Time // the scheduled time of the run, in the job's zone
}

// CronJob is one compiled [[cron]] table.
type CronJob struct {
	name       string
	sched      schedule
	loc        *time.Location
	to         string
	typ        string
	body       tmpl
	jitter     time.Duration
	missedOnce bool
}

// Name returns the job's name.
func (j *CronJob) Name() string { return j.name }

// Next returns the first scheduled time after t, or the zero time when the
// schedule never fires again.
func (j *CronJob) Next(t time.Time) time.Time {
	return j.sched.next(t)
}

// action renders the job's message for the run scheduled at at.
func (j *CronJob) action(at time.Time, rooms map[string]bool) (Action, error) {
	text, err := j.body.render(CronData{Name: j.name, Time: at.In(j.loc)})
	if err != nil {
		return Action{}, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	a := Action{Rule: j.name, Kind: ActSend, To: j.to, Type: j.typ, Text: text}
	switch {
	case a.Type == TypeHeadline:
		a.Kind = ActHeadline
	case a.Type != "":
	case rooms[strings.ToLower(j.to)]:
		a.Type = TypeGroupchat
	default:
		a.Type = TypeChat
	}
	return a, nil
}

// CompileCron checks and compiles cron specs, reporting every problem at
// once at the line of its key. The jobs are nil when the list is not empty.
func CompileCron(specs []CronSpec) ([]*CronJob, diag.List) {
	var errs diag.List
	funcs := TemplateFuncs(time.Now)
	names := map[string]int{}
	jobs := make([]*CronJob, 0, len(specs))
	for i, s := range specs {
		label := s.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		failed := false
		at := func(key, format string, args ...any) {
			failed = true
			errs.Add(s.Pos.At(key, "cron %q: "+format, append([]any{label}, args...)...))
		}
		if s.Name == "" {
			at("name", "name is required")
		} else if prev, dup := names[s.Name]; dup {
			at("name", "duplicate cron name (also cron #%d)", prev+1)
		} else {
			names[s.Name] = i
		}
		j := &CronJob{name: s.Name, to: s.To, loc: time.Local, typ: strings.ToLower(s.Type)}
		if s.Timezone != "" {
			loc, err := time.LoadLocation(s.Timezone)
			if err != nil {
				at("timezone", "unknown time zone %q", s.Timezone)
			} else {
				j.loc = loc
			}
		}
		sched, err := parseSchedule(s.Schedule, j.loc)
		switch {
		case err != nil:
			at("schedule", "%v", err)
		default:
			j.sched = sched
			if j.Next(time.Now()).IsZero() {
				at("schedule", "schedule %q never fires", s.Schedule)
			}
		}
		if s.To == "" {
			at("to", "to is required")
		}
		if s.Body == "" {
			at("body", "body is required")
		} else if t, err := parseTemplate(label+"/body", s.Body, funcs); err != nil {
			at("body", "body template: %v", err)
		} else if _, err := t.render(CronData{Name: s.Name, Time: time.Now()}); err != nil {
			at("body", "body template: %v", err)
		} else {
			j.body = t
		}
		if j.typ != "" {
			if _, ok := typeEvents[j.typ]; !ok {
				at("type", "unknown type %q (want groupchat, chat, headline or normal)", s.Type)
			}
		}
		if s.Jitter != "" {
			d, err := time.ParseDuration(s.Jitter)
			if err != nil || d < 0 {
				at("jitter", "jitter %q: want a duration such as 30s", s.Jitter)
			}
			j.jitter = d
		}
		switch strings.ToLower(s.Missed) {
		case "", "skip":
		case "once":
			j.missedOnce = true
		default:
			at("missed", "unknown missed %q (want skip or once)", s.Missed)
		}
		if !failed {
			jobs = append(jobs, j)
		}
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return jobs, nil
}

// Clock is the time source of a Scheduler; tests substitute a fake one.
type Clock interface {
	Now() time.Time
	// After delivers the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SchedulerOption configures a Scheduler.
type SchedulerOption func(*Scheduler)

// WithClock replaces the real clock.
func WithClock(c Clock) SchedulerOption { return func(s *Scheduler) { s.clock = c } }

// WithRooms names the rooms the bot is in: a job sending to one of them
// without a type sends a groupchat message.
func WithRooms(rooms ...string) SchedulerOption {
	return func(s *Scheduler) {
		for _, r := range rooms {
			s.rooms[strings.ToLower(r)] = true
		}
	}
}

// WithLogger sets the logger of template failures.
func WithLogger(l *slog.Logger) SchedulerOption { return func(s *Scheduler) { s.log = l } }

// History keeps the time of each job's last run across restarts (the bot
// keeps it in its state store), so that a job with missed = "once" runs
// once after a stop during which a run fell, and never twice.
type History interface {
	// Last returns the scheduled time of the job's last run.
	Last(job string) (time.Time, bool)
	// Ran records a run of the job at its scheduled time.
	Ran(job string, at time.Time)
}

// Claimer is a History that also decides, among several instances running
// the same jobs, which one carries out a tick ([ha]: a tick is claimed once
// across instances). A tick Claim refuses is skipped and not recorded.
type Claimer interface {
	Claim(job string, at time.Time) bool
}

// WithHistory makes the scheduler read and record the jobs' last runs.
func WithHistory(h History) SchedulerOption { return func(s *Scheduler) { s.history = h } }

// WithRand replaces the source of jitter: it returns a number in [0, n).
func WithRand(f func(n int64) int64) SchedulerOption { return func(s *Scheduler) { s.rand = f } }

// Scheduler runs cron jobs, each in its own goroutine, and hands their
// actions to emit. A job never overlaps itself: emit is called from the
// job's goroutine, and the next run is computed after it returns, so runs
// that fall while emit blocks are skipped.
//
// Schedules are parsed and their next activations computed by
// robfig/cron; the loop that waits for them is this one rather than
// robfig/cron's runner, because that runner reads the real clock (tests
// drive this one with a fake Clock) and knows neither jitter nor holding
// runs back while the session is down.
//
// A new Scheduler is connected. While disconnected (between Disconnected
// and Reconnected), runs are not emitted; a job with missed = "once" then
// runs once on Reconnected, however many runs it missed.
type Scheduler struct {
	jobs    []*CronJob
	emit    func(Action)
	clock   Clock
	rooms   map[string]bool
	log     *slog.Logger
	rand    func(n int64) int64
	history History

	mu        sync.Mutex // guards connected, missed, started
	connected bool
	missed    []bool
	started   bool

	wake     []chan struct{} // per job: a missed run is due (buffered, 1)
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// NewScheduler returns a scheduler for jobs; Start starts it.
func NewScheduler(jobs []*CronJob, emit func(Action), opts ...SchedulerOption) *Scheduler {
	s := &Scheduler{
		jobs:      jobs,
		emit:      emit,
		clock:     realClock{},
		rooms:     map[string]bool{},
		log:       slog.New(slog.DiscardHandler),
		rand:      rand.Int64N,
		connected: true,
		missed:    make([]bool, len(jobs)),
		wake:      make([]chan struct{}, len(jobs)),
		stop:      make(chan struct{}),
	}
	for i := range s.wake {
		s.wake[i] = make(chan struct{}, 1)
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Start starts the jobs. It does nothing after the first call or after
// Stop.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
		return
	default:
	}
	if s.started {
		return
	}
	s.started = true
	if s.history != nil {
		// A run of a missed = "once" job that fell while crier was not
		// running (after its last recorded run) is due once now.
		now := s.clock.Now()
		for i, j := range s.jobs {
			last, ok := s.history.Last(j.name)
			if !ok || !j.missedOnce {
				continue
			}
			if next := j.Next(last); !next.IsZero() && !next.After(now) {
				s.missed[i] = true
				s.log.Info("cron job missed a run while crier was stopped; it runs once now", "cron", j.name, "last", last, "missed", next)
				if s.connected {
					s.wake[i] <- struct{}{}
				}
			}
		}
	}
	for i := range s.jobs {
		s.wg.Add(1)
		go s.run(i)
	}
}

// Stop stops the jobs and waits for a run in progress to finish. It is safe
// to call more than once.
func (s *Scheduler) Stop() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// Disconnected holds back runs until Reconnected.
func (s *Scheduler) Disconnected() {
	s.mu.Lock()
	s.connected = false
	s.mu.Unlock()
}

// Reconnected resumes runs, and runs once every job with missed = "once"
// that missed a run while disconnected.
func (s *Scheduler) Reconnected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connected = true
	for i, m := range s.missed {
		if m {
			select {
			case s.wake[i] <- struct{}{}:
			default:
			}
		}
	}
}

// due reports whether job i may run now; when not, it records the missed
// run for a missed = "once" job.
func (s *Scheduler) due(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connected {
		return true
	}
	if s.jobs[i].missedOnce {
		s.missed[i] = true
	}
	return false
}

// takeMissed clears and returns job i's missed flag, if still connected.
func (s *Scheduler) takeMissed(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.missed[i] && s.connected
	if m {
		s.missed[i] = false
	}
	return m
}

func (s *Scheduler) run(i int) {
	defer s.wg.Done()
	j := s.jobs[i]
	for {
		now := s.clock.Now()
		next := j.Next(now)
		if next.IsZero() {
			return
		}
		delay := next.Sub(now)
		if j.jitter > 0 {
			delay += time.Duration(s.rand(int64(j.jitter)))
		}
		select {
		case <-s.stop:
			return
		case <-s.clock.After(delay):
			if s.due(i) {
				s.fire(j, next)
			}
		case <-s.wake[i]:
			if s.takeMissed(i) {
				s.fire(j, s.clock.Now())
			}
		}
	}
}

func (s *Scheduler) fire(j *CronJob, at time.Time) {
	a, err := j.action(at, s.rooms)
	if err != nil {
		s.log.Warn("cron job failed", "cron", j.name, "err", err)
		return
	}
	if c, ok := s.history.(Claimer); ok && !c.Claim(j.name, at) {
		s.log.Debug("cron tick claimed by another instance", "cron", j.name, "at", at)
		return
	}
	// Recorded before the action is carried out: a crash in between loses
	// one run rather than doing it twice.
	if s.history != nil {
		s.history.Ran(j.name, at)
	}
	s.emit(a)
}

// Jobs returns the names of the scheduled jobs.
func (s *Scheduler) Jobs() []string {
	out := make([]string, len(s.jobs))
	for i, j := range s.jobs {
		out[i] = j.name
	}
	return slices.Clip(out)
}
