/**
 * @file kmslink.c  The bridge's NDS client, on a thread of its own
 *
 * Every kms_client_* call of the bridge is here, and all of them run on
 * the KMS thread: a leg-key fetch blocks for up to the NDS timeout while
 * the KMS is slow or down, and that must stall neither the workers (they
 * never wait for it) nor the control API (it hands the fetch over and
 * answers the HTTP request when the job comes back).
 *
 *   control thread --kmslink_submit--> queue --> KMS thread: fetch, derive
 *   control thread <--event_active-- done queue <--'
 *
 * The queues are a mutex and a condition variable: the control path, not
 * the packet path.  While the tree has no NDS client implementation
 * (bridge/module.mk detects it), bridged still builds: --kms is then
 * refused at start.
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "bridge/bridge_int.h"
#include "kms_nds/kms.h"

struct kmslink {
	struct bridge *b;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct kms_job *todo, **todo_tail;
	struct kms_job *done, **done_tail;
	struct event *done_ev;   /**< on the control loop                 */
	int stop, reload, started;
};

static int client_fetch(struct bridge *b, struct kms_job *j, uint8_t *key,
			size_t *klen)
{
#ifdef BRIDGE_HAVE_NDS_CLIENT
	return kms_client_fetch_legkey(b->kms, j->conf_ref, j->participant,
				       key, klen, &j->generation, j->msg,
				       sizeof(j->msg));
#else
	(void)b;
	(void)key;
	(void)klen;
	snprintf(j->msg, sizeof(j->msg), "built without the NDS client");
	return ENOTCONN;
#endif
}

static void client_reload(struct bridge *b)
{
#ifdef BRIDGE_HAVE_NDS_CLIENT
	int e = kms_client_reload(b->kms);

	if (e)
		bridge_log(BRIDGE_LOG_ERROR, "reload: NDS credentials: %s "
			   "(keeping the old ones)", strerror(e));
	else
		bridge_log(BRIDGE_LOG_INFO, "reload: NDS credentials re-read");
#else
	(void)b;
#endif
}

/** One job on the KMS thread: fetch the leg key, derive rx/tx by role */
static void job_run(struct bridge *b, struct kms_job *j)
{
	uint8_t key[KMS_NDS_KEY_MAX];
	size_t klen = sizeof(key);
	int e;

	j->msg[0] = '\0';
	e = client_fetch(b, j, key, &klen);
	if (e) {
		if (!j->msg[0])
			snprintf(j->msg, sizeof(j->msg), "%s", strerror(e));
		j->err = e;
	}
	else {
		e = keyleg_derive(key, klen, j->profile,
				  KEYLEG_FLOW_CONFERENCE, KEYLEG_SIDE_BRIDGE,
				  &j->rx, &j->tx);
		if (e) {
			snprintf(j->msg, sizeof(j->msg), "deriving SRTP keys "
				 "from the leg key failed: %s", strerror(e));
			j->err = EPROTO;
		}
	}
	keyleg_wipe(key, sizeof(key));
}

static void *kms_main(void *arg)
{
	struct kmslink *k = arg;

	pthread_mutex_lock(&k->mu);
	for (;;) {
		struct kms_job *j;

		while (!k->stop && !k->todo && !k->reload)
			pthread_cond_wait(&k->cv, &k->mu);
		if (k->stop)
			break;
		if (k->reload) {
			k->reload = 0;
			pthread_mutex_unlock(&k->mu);
			client_reload(k->b);
			pthread_mutex_lock(&k->mu);
			continue;
		}
		j = k->todo;
		k->todo = j->next;
		if (!k->todo)
			k->todo_tail = &k->todo;
		pthread_mutex_unlock(&k->mu);

		job_run(k->b, j);

		pthread_mutex_lock(&k->mu);
		j->next = NULL;
		*k->done_tail = j;
		k->done_tail = &j->next;
		event_active(k->done_ev, EV_READ, 1);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

/* control thread: hand finished jobs to their continuations */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct kmslink *k = arg;
	struct kms_job *list;
	(void)fd;
	(void)what;

	pthread_mutex_lock(&k->mu);
	list = k->done;
	k->done = NULL;
	k->done_tail = &k->done;
	pthread_mutex_unlock(&k->mu);
	while (list) {
		struct kms_job *j = list;

		list = j->next;
		k->b->kms_fetches++;
		if (j->err)
			k->b->kms_failures++;
		j->done(j, j->arg);
	}
}

/** Create the NDS client and its thread */
int kmslink_open(struct bridge *b, char *err, size_t errsz)
{
#ifdef BRIDGE_HAVE_NDS_CLIENT
	struct kms_client_cfg kc;
	struct kmslink *k;
	int e;

	memset(&kc, 0, sizeof(kc));
	kc.host = b->cfg.kms_host;
	kc.port = b->cfg.kms_port;
	kc.cert_file = b->cfg.nds_cert;
	kc.key_file = b->cfg.nds_key;
	kc.ca_file = b->cfg.nds_ca;
	kc.timeout_ms = b->cfg.kms_timeout_ms;
	e = kms_client_alloc(&b->kms, &kc);
	if (e) {
		snprintf(err, errsz, "NDS client (--nds-cert/-key/-ca): %s",
			 strerror(e));
		return e;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return ENOMEM;
	b->kmsl = k;
	k->b = b;
	k->todo_tail = &k->todo;
	k->done_tail = &k->done;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	k->done_ev = event_new(b->base, -1, 0, done_cb, k);
	if (!k->done_ev)
		return ENOMEM;
	e = pthread_create(&k->thr, NULL, kms_main, k);
	if (e) {
		snprintf(err, errsz, "KMS thread: %s", strerror(e));
		return e;
	}
	k->started = 1;
	return 0;
#else
	(void)b;
	snprintf(err, errsz, "--kms: this bridged was built without the NDS "
		 "client (kms_nds)");
	return ENOTSUP;
#endif
}

/**
 * Stop the KMS thread (after its current fetch) and free the client.
 * Jobs not finished are returned through their continuation with
 * ECANCELED, on this (the control) thread.
 */
void kmslink_close(struct bridge *b)
{
	struct kmslink *k = b->kmsl;
	struct kms_job *list;

	if (k) {
		if (k->started) {
			pthread_mutex_lock(&k->mu);
			k->stop = 1;
			pthread_cond_signal(&k->cv);
			pthread_mutex_unlock(&k->mu);
			pthread_join(k->thr, NULL);
		}
		/* nothing runs the queues any more */
		*k->done_tail = k->todo;
		list = k->done;
		while (list) {
			struct kms_job *j = list;

			list = j->next;
			j->err = ECANCELED;
			snprintf(j->msg, sizeof(j->msg), "shutting down");
			j->done(j, j->arg);
		}
		if (k->done_ev)
			event_free(k->done_ev);
		pthread_mutex_destroy(&k->mu);
		pthread_cond_destroy(&k->cv);
		free(k);
		b->kmsl = NULL;
	}
#ifdef BRIDGE_HAVE_NDS_CLIENT
	if (b->kms)
		b->kms = kms_client_free(b->kms);
#else
	b->kms = NULL;
#endif
}

/** SIGHUP: the KMS thread re-reads the NDS credentials between fetches */
int kmslink_reload(struct bridge *b)
{
	struct kmslink *k = b->kmsl;

	if (!k)
		return 0;
	pthread_mutex_lock(&k->mu);
	k->reload = 1;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return 0;
}

/**
 * Queue a fetch: job->done(job, job->arg) runs later on the control
 * thread with job->err 0 and job->rx/tx/generation, or an errno
 * (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENOTCONN: unreachable; EACCES,
 * ENOENT, EPROTO, EBADMSG: refused or failed) and job->msg.
 */
int kmslink_submit(struct bridge *b, struct kms_job *job)
{
	struct kmslink *k = b->kmsl;

	if (!k)
		return ENOTCONN;
	job->b = b;
	job->err = 0;
	job->next = NULL;
	pthread_mutex_lock(&k->mu);
	*k->todo_tail = job;
	k->todo_tail = &job->next;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return 0;
}
