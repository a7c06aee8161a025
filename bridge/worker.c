/**
 * @file worker.c  Worker threads: event loop, mixing clock, send batching
 *
 * Each worker owns an event_base, a timerfd mixing clock and whole
 * conferences.  The control thread never touches a conference itself: it
 * writes a pointer to a struct wcall into the worker's command pipe and
 * waits on the call's semaphore, so everything under a conference is only
 * ever used by one thread and the packet path takes no lock.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/timerfd.h>
#include <event2/event.h>
#include "bridge/bridge_int.h"

struct wcall {
	worker_call_h *fn;
	void *arg;
	sem_t done;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** Account busy time; publish the load once per second */
static void worker_busy(struct worker *w, uint64_t t0, uint64_t t1)
{
	uint64_t win;

	w->st.busy_ns += t1 - t0;
	win = t1 - w->st.window_start_ns;
	if (win >= 1000000000u) {
		atomic_store(&w->load_permille,
			     (unsigned)(w->st.busy_ns * 1000 / win));
		w->st.busy_ns = 0;
		w->st.window_start_ns = t1;
	}
}

static void cmd_cb(int fd, short what, void *arg)
{
	struct worker *w = arg;
	struct wcall *calls[16];
	ssize_t n;
	size_t i;
	(void)what;

	n = read(fd, calls, sizeof(calls));
	if (n <= 0)
		return;
	for (i = 0; i < (size_t)n / sizeof(calls[0]); i++) {
		calls[i]->fn(w, calls[i]->arg);
		sem_post(&calls[i]->done);
	}
}

/**
 * Run fn(w, arg) on the worker's thread and wait for it.  Called from the
 * control thread only; the semaphore orders memory both ways, so fn may
 * read and write the caller's structures.
 */
int worker_call(struct worker *w, worker_call_h *fn, void *arg)
{
	struct wcall c, *cp = &c;
	ssize_t n;

	c.fn = fn;
	c.arg = arg;
	if (sem_init(&c.done, 0, 0))
		return errno;
	do {
		n = write(w->cmd_pipe[1], &cp, sizeof(cp));
	} while (n < 0 && errno == EINTR);
	if (n != sizeof(cp)) {
		sem_destroy(&c.done);
		return EPIPE;
	}
	while (sem_wait(&c.done) && errno == EINTR)
		;
	sem_destroy(&c.done);
	return 0;
}

/** Arm the timerfd for the earliest conference tick (absolute time) */
void worker_arm(struct worker *w)
{
	struct itimerspec its;
	uint64_t next = 0;
	struct conf *c;

	for (c = w->confs; c; c = c->next)
		if (!next || c->next_tick_us < next)
			next = c->next_tick_us;
	memset(&its, 0, sizeof(its));
	if (next) {
		its.it_value.tv_sec = (time_t)(next / 1000000u);
		its.it_value.tv_nsec = (long)(next % 1000000u) * 1000;
	}
	timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* tick lateness: bucket upper bounds (µs), then +Inf */
const uint32_t tick_late_le_us[TICK_LATE_BUCKETS - 1] = {
	100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
	200000, 500000,
};

static void late_record(struct worker_stats *st, uint64_t late_us)
{
	unsigned i = 0;

	while (i < TICK_LATE_BUCKETS - 1 && late_us > tick_late_le_us[i])
		i++;
	st->late_hist[i]++;
	st->late_sum_us += late_us;
}

/*
 * The mixing clock.  Each conference keeps its own deadline on a fixed
 * grid (start + k * ptime), so ticks never drift; a wake-up that comes
 * late runs every tick that is due, with its grid time, instead of
 * skipping any.  Only after a stall of more than a second (suspend, debug
 * stop) does a conference jump to the last grid point before the
 * present.  Returns the ticks run.
 */
unsigned conf_clock_run(struct conf *c, uint64_t now_us,
			conf_tick_h *tick, struct worker_stats *st)
{
	uint64_t period = (uint64_t)c->ptime * 1000;
	unsigned n = 0;

	if (c->next_tick_us + 1000000u < now_us) {
		/* the last grid point: the phase shared with others stays */
		c->next_tick_us += (now_us - c->next_tick_us) / period *
			period;
		st->resyncs++;
	}
	if (c->next_tick_us + period <= now_us)
		st->late_ticks++;
	while (c->next_tick_us <= now_us) {
		late_record(st, now_us - c->next_tick_us);
		tick(c, c->next_tick_us);
		c->next_tick_us += period;
		st->ticks++;
		n++;
	}
	return n;
}

static void tick_cb(int fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t exp, t0 = now_ns(), now;
	unsigned ran = 0;
	struct conf *c;
	ssize_t n;
	(void)what;

	n = read(fd, &exp, sizeof(exp));
	(void)n;
	now = t0 / 1000;
	/* the clock is read again after each conference that ticked, so a
	 * tick's lateness counts the conferences served before it */
	for (c = w->confs; c; c = c->next) {
		if (ran)
			now = now_ns() / 1000;
		ran = conf_clock_run(c, now, conf_tick, &w->st);
	}
	worker_flush(w);
	worker_arm(w);
	worker_busy(w, t0, now_ns());
}

/** Queue a packet for sending; the worker flushes at the end of a pass */
void worker_send(struct worker *w, int fd, struct pkt *k,
		 const struct baddr *to)
{
	struct mmsghdr *m;
	unsigned i;

	if (w->nsend == WORKER_SEND_BATCH)
		worker_flush(w);
	i = w->nsend++;
	m = &w->smsg[i];
	w->siov[i].iov_base = pkt_data(k);
	w->siov[i].iov_len = k->len;
	memset(&m->msg_hdr, 0, sizeof(m->msg_hdr));
	m->msg_hdr.msg_name = (void *)&to->ss;
	m->msg_hdr.msg_namelen = to->len;
	m->msg_hdr.msg_iov = &w->siov[i];
	m->msg_hdr.msg_iovlen = 1;
	w->spkt[i] = k;
	w->sfd[i] = fd;
}

/*
 * Send the queue in one io_uring submission: a sendmsg per packet, each
 * on its own leg's socket, one system call for all of them (sendmmsg
 * batches only packets of one socket, and a pass's packets mostly leave
 * on different legs).  MSG_DONTWAIT: a full socket buffer completes with
 * -EAGAIN at once, as sendmmsg would fail, and is counted the same way.
 * Every completion is reaped before the buffers go back to the pool.  A
 * ring that fails (or is not done in 8 tries) is not used again:
 * the SQEs it may still hold point at buffers about to be reused.
 */
static void flush_uring(struct worker *w)
{
	struct io_uring_cqe *cqe;
	unsigned i, done = 0, head, n, tries = 0;

	for (i = 0; i < w->nsend; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

		/* the ring has WORKER_SEND_BATCH entries: never NULL */
		io_uring_prep_sendmsg(sqe, w->sfd[i], &w->smsg[i].msg_hdr,
				      MSG_DONTWAIT);
	}
	while (done < w->nsend) {
		int r = io_uring_submit_and_wait(&w->ring, w->nsend - done);

		if ((r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) ||
		    ++tries > 8) {
			/* count what is missing; sendmmsg from now on */
			w->st.gone.send_errors += w->nsend - done;
			w->uring_ok = -1;
			break;
		}
		n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			if (cqe->res < 0)
				w->st.gone.send_errors++;
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		done += n;
	}
}

/** Send the queue: one io_uring submission, or a sendmmsg per run of
 * packets on the same socket */
void worker_flush(struct worker *w)
{
	unsigned i = 0, j;

	if (w->uring_ok == 1 && w->nsend) {
		flush_uring(w);
		i = w->nsend;
	}
	while (i < w->nsend) {
		int r;

		for (j = i + 1; j < w->nsend && w->sfd[j] == w->sfd[i]; j++)
			;
		r = sendmmsg(w->sfd[i], &w->smsg[i], j - i, MSG_DONTWAIT);
		if (r < (int)(j - i))
			w->st.gone.send_errors += (j - i) -
				(unsigned)(r < 0 ? 0 : r);
		i = j;
	}
	for (i = 0; i < w->nsend; i++)
		pool_put(&w->pool, w->spkt[i]);
	w->nsend = 0;
}

/**
 * A leg's socket is readable: take a batch with recvmmsg and run each
 * packet through the stages (conf.c).
 */
void leg_recv_cb(int fd, short what, void *arg)
{
	struct leg *l = arg;
	struct worker *w = l->conf->w;
	uint64_t t0 = now_ns();
	unsigned rounds;
	(void)what;

	/*
	 * The receive buffers stay attached to the worker's mmsghdr array
	 * (set up once in worker_start): every packet is done with before
	 * the next recvmmsg, so receiving costs no pool operation at all.
	 */
	for (rounds = 0; rounds < 4; rounds++) {
		unsigned i;
		int n;

		for (i = 0; i < WORKER_RECV_BATCH; i++) {
			w->rmsg[i].msg_hdr.msg_namelen = sizeof(w->raddr[i]);
			w->rmsg[i].msg_hdr.msg_flags = 0;
		}
		n = recvmmsg(fd, w->rmsg, WORKER_RECV_BATCH, MSG_DONTWAIT,
			     NULL);
		for (i = 0; n > 0 && i < (unsigned)n; i++) {
			struct baddr src;
			struct pkt *k = w->rpkt[i];

			memcpy(&src.ss, &w->raddr[i], sizeof(src.ss));
			src.len = w->rmsg[i].msg_hdr.msg_namelen;
			k->len = w->rmsg[i].msg_len;
			if (w->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC)
				l->cnt.malformed++;
			else
				leg_process(l, k, &src, t0 / 1000);
		}
		/* a socket error (ICMP, EINTR) is reported alone: the
		 * queue may still hold datagrams */
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			continue;
		if (n < WORKER_RECV_BATCH)
			break;
	}
	/*
	 * The socket's event is edge-triggered (no poll of every socket
	 * again after each wake-up): a short batch means it was drained,
	 * and a new datagram raises a new edge.  After a burst of full
	 * batches the rest waits one loop pass, after the other sockets.
	 */
	if (rounds == 4)
		event_active(l->ev, EV_READ, 1);
	worker_busy(w, t0, now_ns());
}

/* ms from phase p to the nearest phase more used than p (either way
 * round the period), ms if none */
static unsigned phase_gap(const unsigned *used, unsigned ms, unsigned p)
{
	unsigned d;

	for (d = 1; d <= ms / 2; d++)
		if (used[(p + d) % ms] >= used[p] + 1 ||
		    used[(p + ms - d) % ms] >= used[p] + 1)
			return d;
	return ms;
}

/**
 * A new conference's first deadline.  A TRANSCODE conference's tick only
 * sends RTCP (its packets go through the mixer as they arrive): all of
 * them share the phase of the ptime grid.  MIX conferences spread their
 * mixing work over the period, on whole milliseconds (at most ptime
 * phases, so at most 1000 clock wake-ups a second however many
 * conferences there are): a new one takes a phase that the fewest of
 * the worker's other MIX conferences (others) use, the one farthest from
 * the busier phases around it (the first such from one period after
 * now).  Conferences created in a burst thus tick one after another
 * across the period instead of all at once, and a tick does not wait
 * for the ones before it.
 */
uint64_t conf_first_tick(const struct conf *others, const struct conf *c,
			 uint64_t now_us)
{
	uint64_t period = (uint64_t)c->ptime * 1000, base;
	unsigned used[CONF_PTIME_MAX] = {0}, gap[CONF_PTIME_MAX], k, best = 0;
	unsigned ms = c->ptime;
	const struct conf *o;

	if (c->mode != MODE_MIX)
		return (now_us / period + 1) * period;
	base = (now_us + period) / 1000 + 1;
	if (!ms || ms > CONF_PTIME_MAX)
		return base * 1000;
	for (o = others; o; o = o->next)
		if (o != c && o->mode == MODE_MIX)
			used[(o->next_tick_us / 1000) % ms]++;
	for (k = 0; k < ms; k++)
		gap[k] = phase_gap(used, ms, (unsigned)((base + k) % ms));
	for (k = 1; k < ms; k++) {
		unsigned p = (unsigned)((base + k) % ms);
		unsigned q = (unsigned)((base + best) % ms);

		if (used[p] < used[q] || (used[p] == used[q] &&
					  gap[k] > gap[best]))
			best = k;
	}
	return (base + best) * 1000;
}

/** Put a conference on this worker's clock (worker thread) */
void worker_conf_attach(struct worker *w, struct conf *c)
{
	c->w = w;
	c->next = w->confs;
	w->confs = c;
	c->next_tick_us = conf_first_tick(w->confs, c, bridge_now_us());
	atomic_fetch_add(&w->nconfs, 1);
	worker_arm(w);
}

/** Take a conference off this worker (worker thread) */
void worker_conf_detach(struct worker *w, struct conf *c)
{
	struct conf **pp;

	for (pp = &w->confs; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			atomic_fetch_sub(&w->nconfs, 1);
			break;
		}
	}
	c->next = NULL;
	worker_arm(w);
}

/*
 * The loop.  The packets a pass of the loop produced (every socket that
 * was ready, the clock) go out together at its end: back-to-back sends
 * wake a sleeping peer once rather than once per packet, at the cost of
 * the pass's own duration (microseconds) for the first of them.
 */
static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->st.window_start_ns = now_ns();
	while (!w->stop) {
		if (event_base_loop(w->base, EVLOOP_ONCE) < 0)
			break;
		if (w->nsend) {
			uint64_t t0 = now_ns();

			worker_flush(w);
			worker_busy(w, t0, now_ns());
		}
	}
	return NULL;
}

/** Create the loop, clock, pipe and pool, then start the thread */
int worker_start(struct worker *w, struct bridge *b, unsigned idx,
		 size_t pool_bufs)
{
	struct event_config *ecfg;
	const struct timeval disp_tv = {0, 250};
	unsigned i;
	int err;

	w->idx = idx;
	w->b = b;
	w->tfd = -1;
	w->cmd_pipe[0] = w->cmd_pipe[1] = -1;
	err = pool_init(&w->pool, pool_bufs + WORKER_RECV_BATCH);
	if (err)
		return err;
	for (i = 0; i < WORKER_RECV_BATCH; i++) {
		w->rpkt[i] = pool_get(&w->pool);
		w->riov[i].iov_base = pkt_data(w->rpkt[i]);
		/* keep the tailroom out of what recv may fill */
		w->riov[i].iov_len = PKT_MTU;
		memset(&w->rmsg[i].msg_hdr, 0, sizeof(w->rmsg[i].msg_hdr));
		w->rmsg[i].msg_hdr.msg_name = &w->raddr[i];
		w->rmsg[i].msg_hdr.msg_iov = &w->riov[i];
		w->rmsg[i].msg_hdr.msg_iovlen = 1;
	}
	/* the receive batch's buffers are not part of the published pool */
	w->pool.n = w->pool.nfree;
	w->pool.low = w->pool.nfree;
	/*
	 * The process enables libevent's locking for the control thread's
	 * base; a worker's base is only ever touched by its own thread (the
	 * control thread talks through the pipe), so it goes without: the
	 * packet path takes no lock, libevent's included.
	 */
	ecfg = event_config_new();
	if (!ecfg)
		return ENOMEM;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
	/*
	 * Two priorities: the mixing clock (0) before sockets and control
	 * (1).  Priorities alone do not help a tick that becomes due while
	 * hundreds of ready sockets are being served (libevent polls again
	 * only after the whole queue): so after 250 µs or 32 callbacks of
	 * priority 1 it polls again, and a due tick runs next.  Measured
	 * (g711_10, 1,100 legs on one worker): tick lateness p50 was 20 ms.
	 */
	event_config_set_max_dispatch_interval(ecfg, &disp_tv, 32, 1);
	w->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (!w->base)
		return ENOMEM;
	if (event_base_priority_init(w->base, WORKER_PRIOS))
		return ENOMEM;
	if (pipe2(w->cmd_pipe, O_CLOEXEC))
		return errno;
	fcntl(w->cmd_pipe[0], F_SETFL, O_NONBLOCK);
	w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->tfd < 0)
		return errno;
	w->cmd_ev = event_new(w->base, w->cmd_pipe[0], EV_READ | EV_PERSIST,
			      cmd_cb, w);
	w->tick_ev = event_new(w->base, w->tfd, EV_READ | EV_PERSIST,
			       tick_cb, w);
	if (!w->cmd_ev || !w->tick_ev)
		return ENOMEM;
	/* the clock runs first when both are ready */
	event_priority_set(w->tick_ev, 0);
	event_priority_set(w->cmd_ev, WORKER_PRIO_IO);
	event_add(w->cmd_ev, NULL);
	event_add(w->tick_ev, NULL);
	/* no IORING_SETUP_SINGLE_ISSUER: the ring is made here, on the
	 * control thread, and used on the worker's */
	if (b->cfg.send_io_uring &&
	    io_uring_queue_init(WORKER_SEND_BATCH, &w->ring, 0) == 0)
		w->uring_ok = 1;
	err = pthread_create(&w->thr, NULL, worker_main, w);
	if (err)
		return err;
	w->started = 1;
	return 0;
}

static void stop_call(struct worker *w, void *arg)
{
	(void)arg;
	w->stop = 1;
	event_base_loopbreak(w->base);
}

/** Stop the thread (its conferences must be freed already) and free */
void worker_stop(struct worker *w)
{
	if (w->started) {
		worker_call(w, stop_call, NULL);
		pthread_join(w->thr, NULL);
		w->started = 0;
	}
	if (w->cmd_ev)
		event_free(w->cmd_ev);
	if (w->tick_ev)
		event_free(w->tick_ev);
	w->cmd_ev = w->tick_ev = NULL;
	if (w->base)
		event_base_free(w->base);
	w->base = NULL;
	if (w->tfd >= 0)
		close(w->tfd);
	if (w->cmd_pipe[0] >= 0)
		close(w->cmd_pipe[0]);
	if (w->cmd_pipe[1] >= 0)
		close(w->cmd_pipe[1]);
	w->tfd = w->cmd_pipe[0] = w->cmd_pipe[1] = -1;
	if (w->uring_ok)
		io_uring_queue_exit(&w->ring);
	w->uring_ok = 0;
	pool_fini(&w->pool);
}
