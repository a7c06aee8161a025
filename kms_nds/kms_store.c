/** @file kms_store.c  KMS persistent store on SQLite with wrapped keys */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "kms_nds/kms_int.h"

#define STMT_CACHE 64

struct kms_store {
	sqlite3 *db;
	uint8_t skey[32];
	struct kms_cfg cfg;
	/* prepared statements by SQL text address (every query is a
	 * literal at one call site): prepared once, reset after use */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[STMT_CACHE];
	size_t ncache;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB);"
	"CREATE TABLE IF NOT EXISTS identities(id TEXT PRIMARY KEY,"
	" cred BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS groups(grp TEXT, member TEXT,"
	" PRIMARY KEY(grp, member));"
	"CREATE TABLE IF NOT EXISTS ring(purpose TEXT, id INTEGER,"
	" key BLOB, created INTEGER, superseded INTEGER,"
	" PRIMARY KEY(purpose, id));"
	"CREATE TABLE IF NOT EXISTS secrets(name TEXT PRIMARY KEY, key BLOB);"
	"CREATE TABLE IF NOT EXISTS seen(nonce BLOB PRIMARY KEY, t INTEGER);"
	"CREATE TABLE IF NOT EXISTS fails(scope TEXT, t INTEGER);"
	"CREATE INDEX IF NOT EXISTS fails_scope ON fails(scope, t);"
	"CREATE TABLE IF NOT EXISTS confs(ref TEXT PRIMARY KEY, focus TEXT,"
	" chairman TEXT, active INTEGER, kjoin BLOB, expires INTEGER);"
	"CREATE TABLE IF NOT EXISTS eligible(ref TEXT, id TEXT,"
	" PRIMARY KEY(ref, id));"
	"CREATE TABLE IF NOT EXISTS legs(ref TEXT, participant TEXT,"
	" gen INTEGER, key BLOB, prev_gen INTEGER, prev_key BLOB,"
	" prev_until INTEGER, expires INTEGER,"
	" PRIMARY KEY(ref, participant));"
	"CREATE TABLE IF NOT EXISTS calls(ref TEXT PRIMARY KEY, caller TEXT,"
	" callee TEXT, xcoder TEXT, key BLOB, expires INTEGER);"
	"CREATE TABLE IF NOT EXISTS mailbox(user TEXT PRIMARY KEY,"
	" node TEXT);"
	"CREATE TABLE IF NOT EXISTS audit(t INTEGER, who TEXT, role TEXT,"
	" what TEXT, ref TEXT, participant TEXT, result TEXT);";

void kms_cfg_default(struct kms_cfg *c)
{
	c->token_lifetime = 86400;
	c->kkms_lifetime = 7 * 86400;
	c->kkms_grace = 86400;
	c->time_window = 300;
	c->invite_validity = 3600;
	c->leg_lifetime = 86400;
	c->rekey_overlap = 30;
	c->mbx_retention = 30 * 86400;
	c->fail_max_id = 5;
	c->fail_max_conf = 20;
	c->fail_window = 600;
}

struct kms_cfg *kms_store_cfg(struct kms_store *s)
{
	return &s->cfg;
}

/** Done with a statement: reset a cached one, finalize any other */
static void release(struct kms_store *s, sqlite3_stmt *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; i < s->ncache; i++) {
		if (s->cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	}
	sqlite3_finalize(st);
}

/*
 * Prepare sql and bind arguments described by fmt: 's' const char *,
 * 'i' int64 (passed as uint64_t), 'b' blob (const void *, size_t).
 */
static sqlite3_stmt *prep(struct kms_store *s, const char *sql,
			  const char *fmt, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int i, rc = SQLITE_OK;

	for (i = 0; i < (int)s->ncache; i++) {
		if (s->cache[i].sql == sql) {
			st = s->cache[i].st;
			break;
		}
	}
	if (!st) {
		if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
			return NULL;
		if (s->ncache < STMT_CACHE) {
			s->cache[s->ncache].sql = sql;
			s->cache[s->ncache++].st = st;
		}
	}
	va_start(ap, fmt);
	for (i = 0; fmt && fmt[i] && rc == SQLITE_OK; i++) {
		if (fmt[i] == 's') {
			const char *v = va_arg(ap, const char *);

			rc = sqlite3_bind_text(st, i + 1, v ? v : "", -1,
					       SQLITE_TRANSIENT);
		}
		else if (fmt[i] == 'i') {
			uint64_t v = va_arg(ap, uint64_t);

			rc = sqlite3_bind_int64(st, i + 1, (sqlite3_int64)v);
		}
		else {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);

			rc = sqlite3_bind_blob(st, i + 1, p, (int)n,
					       SQLITE_TRANSIENT);
		}
	}
	va_end(ap);
	if (rc != SQLITE_OK) {
		release(s, st);
		return NULL;
	}
	return st;
}

/** Run a statement to completion: 0, EEXIST (constraint) or EIO */
static int run(struct kms_store *s, sqlite3_stmt *st)
{
	int rc;

	if (!st)
		return EIO;
	rc = sqlite3_step(st);
	release(s, st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return (rc & 0xff) == SQLITE_CONSTRAINT ? EEXIST : EIO;
}

static int col_str(sqlite3_stmt *st, int c, char *out, size_t sz)
{
	const unsigned char *t = sqlite3_column_text(st, c);
	size_t n = t ? strlen((const char *)t) : 0;

	if (n >= sz)
		return EMSGSIZE;
	if (n)
		memcpy(out, t, n);
	out[n] = '\0';
	return 0;
}

static int wrap(struct kms_store *s, const char *what, const char *row,
		const uint8_t key[32], uint8_t *out, size_t *out_len)
{
	return kms_seal(s->skey, KMS_T_WRAP, 0, 0, what, row, key, 32, out,
			32 + KMS_SEAL_OVERHEAD, out_len);
}

static int unwrap(struct kms_store *s, const char *what, const char *row,
		  sqlite3_stmt *st, int col, uint8_t key[32])
{
	const void *b = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col), len;
	int err;

	if (!b || n != 32 + KMS_SEAL_OVERHEAD)
		return EIO;
	err = kms_open(s->skey, KMS_T_WRAP, what, row, b, n, NULL, key, 32,
		       &len);
	return err || len != 32 ? EIO : 0;
}

static void legrow(char *row, size_t sz, const char *ref, const char *who,
		   uint32_t gen)
{
	snprintf(row, sz, "%s\n%s\n%u", ref, who, gen);
}

int kms_store_keyfile_create(const char *key_file)
{
	uint8_t k[32];
	char b64[64];
	int fd, err;
	ssize_t n;

	err = kms_random(k, sizeof(k));
	if (!err)
		err = kms_b64_encode(k, sizeof(k), b64, sizeof(b64));
	kms_wipe(k, sizeof(k));
	if (err)
		return err;
	fd = open(key_file, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return errno;
	n = write(fd, b64, strlen(b64));
	err = n == (ssize_t)strlen(b64) ? 0 : EIO;
	if (write(fd, "\n", 1) != 1)
		err = EIO;
	close(fd);
	kms_wipe(b64, sizeof(b64));
	return err;
}

static int keyfile_read(const char *path, uint8_t key[32])
{
	char buf[128];
	size_t n, len;
	FILE *f = fopen(path, "rb");
	int err = 0;

	if (!f)
		return errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (n == 32) {
		memcpy(key, buf, 32);
	}
	else {
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
			     buf[n - 1] == ' '))
			n--;
		buf[n] = '\0';
		err = kms_b64_decode(buf, key, 32, &len);
		if (!err && len != 32)
			err = EINVAL;
	}
	kms_wipe(buf, sizeof(buf));
	return err;
}

int kms_store_open(struct kms_store **sp, const char *db_path,
		   const char *key_file)
{
	struct stat st;
	uint8_t k[32];
	int err;

	if (!sp || !db_path || !key_file)
		return EINVAL;
	err = keyfile_read(key_file, k);
	if (!err && stat(key_file, &st) == 0 && (st.st_mode & 077))
		fprintf(stderr, "kms: warning: storage key %s is readable by "
			"group or others\n", key_file);
	/* the database holds wrapped keys only; keep it private anyway
	 * (SQLite gives its -wal and -shm files the database's mode) */
	if (!err) {
		int fd = open(db_path, O_RDWR | O_CREAT, 0600);

		if (fd >= 0)
			close(fd);
		err = kms_store_open_key(sp, db_path, k);
	}
	kms_wipe(k, sizeof(k));
	return err;
}

/** The meta "check" row proves the storage key is the one used before */
static int check_key(struct kms_store *s)
{
	static const uint8_t zero[32];
	uint8_t w[32 + KMS_SEAL_OVERHEAD], k[32];
	size_t wl;
	sqlite3_stmt *st;
	int err;

	st = prep(s, "SELECT v FROM meta WHERE k='check'", NULL);
	if (!st)
		return EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		err = unwrap(s, "meta", "check", st, 0, k);
		release(s, st);
		if (!err && !kms_ct_equal(k, zero, 32))
			err = EIO;
		return err;
	}
	release(s, st);
	err = wrap(s, "meta", "check", zero, w, &wl);
	if (!err)
		err = run(s, prep(s, "INSERT INTO meta VALUES('check', ?)",
				  "b",
			       w, wl));
	return err;
}

int kms_store_open_key(struct kms_store **sp, const char *db_path,
		       const uint8_t skey[32])
{
	struct kms_store *s;
	int err = 0;

	s = calloc(1, sizeof(*s));
	if (!s)
		return ENOMEM;
	memcpy(s->skey, skey, 32);
	kms_cfg_default(&s->cfg);
	if (sqlite3_open(db_path, &s->db) != SQLITE_OK)
		err = EIO;
	if (!err) {
		sqlite3_busy_timeout(s->db, 2000);
		if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) !=
		    SQLITE_OK)
			err = EIO;
	}
	if (!err)
		err = check_key(s);
	if (err)
		s = kms_store_close(s);
	*sp = s;
	return err;
}

struct kms_store *kms_store_close(struct kms_store *s)
{
	size_t i;

	if (!s)
		return NULL;
	for (i = 0; i < s->ncache; i++)
		sqlite3_finalize(s->cache[i].st);
	sqlite3_close(s->db);
	kms_wipe(s->skey, sizeof(s->skey));
	free(s);
	return NULL;
}

int kms_store_begin(struct kms_store *s)
{
	return sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) ==
	       SQLITE_OK ? 0 : EIO;
}

int kms_store_commit(struct kms_store *s, int ok)
{
	return sqlite3_exec(s->db, ok ? "COMMIT" : "ROLLBACK", NULL, NULL,
			    NULL) == SQLITE_OK ? 0 : EIO;
}

/* ---- identities and groups ---- */

int kms_id_add(struct kms_store *s, const char *id, uint8_t cred[32])
{
	uint8_t w[32 + KMS_SEAL_OVERHEAD];
	size_t wl;
	int err;

	if (!id || !*id || strlen(id) >= KMS_ID_MAX)
		return EINVAL;
	err = kms_random(cred, 32);
	if (!err)
		err = wrap(s, "cred", id, cred, w, &wl);
	if (!err)
		err = run(s, prep(s, "INSERT OR REPLACE INTO identities"
			       " VALUES(?, ?)", "sb", id, w, wl));
	return err;
}

int kms_id_cred(struct kms_store *s, const char *id, uint8_t cred[32])
{
	sqlite3_stmt *st;
	int err;

	st = prep(s, "SELECT cred FROM identities WHERE id=?", "s", id);
	if (!st)
		return EIO;
	if (sqlite3_step(st) == SQLITE_ROW)
		err = unwrap(s, "cred", id, st, 0, cred);
	else
		err = ENOENT;
	release(s, st);
	return err;
}

int kms_group_add(struct kms_store *s, const char *grp, const char *member)
{
	return run(s, prep(s, "INSERT OR IGNORE INTO groups VALUES(?, ?)",
			   "ss",
			grp, member));
}

static int exists(struct kms_store *s, sqlite3_stmt *st)
{
	int rc;

	if (!st)
		return EIO;
	rc = sqlite3_step(st);
	release(s, st);
	return rc == SQLITE_ROW ? 0 : ENOENT;
}

int kms_group_has(struct kms_store *s, const char *grp, const char *member)
{
	return exists(s, prep(s, "SELECT 1 FROM groups WHERE grp=? AND"
			      " member=?",
			   "ss", grp, member));
}

/* ---- key rings ---- */

static void ringrow(char *row, size_t sz, const char *purpose, uint32_t id)
{
	snprintf(row, sz, "%s\n%u", purpose, id);
}

int kms_ring_rotate(struct kms_store *s, const char *purpose, uint64_t now)
{
	uint8_t k[32], w[32 + KMS_SEAL_OVERHEAD];
	char row[64];
	uint32_t id = 1;
	sqlite3_stmt *st;
	size_t wl;
	int err;

	st = prep(s, "SELECT max(id) FROM ring WHERE purpose=?", "s",
		  purpose);
	if (!st)
		return EIO;
	if (sqlite3_step(st) == SQLITE_ROW)
		id = (uint32_t)sqlite3_column_int64(st, 0) + 1;
	release(s, st);
	err = kms_random(k, 32);
	ringrow(row, sizeof(row), purpose, id);
	if (!err)
		err = wrap(s, "ring", row, k, w, &wl);
	kms_wipe(k, sizeof(k));
	if (!err)
		err = run(s, prep(s, "UPDATE ring SET superseded=? WHERE"
			       " purpose=? AND superseded=0", "is", now,
			       purpose));
	if (!err)
		err = run(s, prep(s, "INSERT INTO ring VALUES(?, ?, ?, ?, 0)",
			       "sibi", purpose, (uint64_t)id, w, wl, now));
	return err;
}

int kms_ring_current(struct kms_store *s, const char *purpose,
		     uint64_t now, uint32_t *id, uint8_t key[32])
{
	sqlite3_stmt *st;
	char row[64];
	int err, tries;

	for (tries = 0; tries < 2; tries++) {
		st = prep(s, "SELECT id, key FROM ring WHERE purpose=? AND"
			  " superseded=0 ORDER BY id DESC LIMIT 1", "s",
			  purpose);
		if (!st)
			return EIO;
		if (sqlite3_step(st) == SQLITE_ROW) {
			*id = (uint32_t)sqlite3_column_int64(st, 0);
			ringrow(row, sizeof(row), purpose, *id);
			err = unwrap(s, "ring", row, st, 1, key);
			release(s, st);
			return err;
		}
		release(s, st);
		err = kms_ring_rotate(s, purpose, now);
		if (err)
			return err;
	}
	return EIO;
}

/**
 * A ring key by id: ENOENT if never existed or purged, EKEYEXPIRED once
 * superseded for longer than grace.
 */
int kms_ring_get(struct kms_store *s, const char *purpose, uint32_t id,
		 uint64_t now, uint32_t grace, uint8_t key[32])
{
	sqlite3_stmt *st;
	char row[64];
	uint64_t sup;
	int err;

	st = prep(s, "SELECT superseded, key FROM ring WHERE purpose=? AND"
		  " id=?", "si", purpose, (uint64_t)id);
	if (!st)
		return EIO;
	if (sqlite3_step(st) != SQLITE_ROW) {
		release(s, st);
		return ENOENT;
	}
	sup = (uint64_t)sqlite3_column_int64(st, 0);
	if (sup && now >= sup + grace) {
		release(s, st);
		return EKEYEXPIRED;
	}
	ringrow(row, sizeof(row), purpose, id);
	err = unwrap(s, "ring", row, st, 1, key);
	release(s, st);
	return err;
}

/** Rotate keys that are due, delete keys past their grace / retention */
int kms_ring_maintain(struct kms_store *s, uint64_t now)
{
	static const char *const purposes[] = { "kkms", "kmbx" };
	size_t i;
	int err = 0;

	for (i = 0; i < 2 && !err; i++) {
		uint32_t keep = i ? s->cfg.mbx_retention : s->cfg.kkms_grace;
		sqlite3_stmt *st;

		st = prep(s, "SELECT created FROM ring WHERE purpose=? AND"
			  " superseded=0", "s", purposes[i]);
		if (!st)
			return EIO;
		if (sqlite3_step(st) != SQLITE_ROW ||
		    now >= (uint64_t)sqlite3_column_int64(st, 0) +
			   s->cfg.kkms_lifetime)
			err = kms_ring_rotate(s, purposes[i], now);
		release(s, st);
		if (!err)
			/* the key is destroyed; the row stays as a
			 * tombstone so a late token gets "retired" */
			err = run(s, prep(s, "UPDATE ring SET key=NULL WHERE"
				       " purpose=? AND superseded>0 AND"
				       " superseded+?<=? AND key IS NOT NULL",
				       "sii", purposes[i], (uint64_t)keep,
				       now));
	}
	if (!err)
		err = run(s, prep(s, "DELETE FROM seen WHERE t<?", "i",
			       now - 2 * (uint64_t)s->cfg.time_window));
	if (!err)
		err = run(s, prep(s, "DELETE FROM fails WHERE t<?", "i",
			       now - (uint64_t)s->cfg.fail_window));
	return err;
}

int kms_secret(struct kms_store *s, const char *name, uint8_t key[32])
{
	uint8_t w[32 + KMS_SEAL_OVERHEAD];
	sqlite3_stmt *st;
	size_t wl;
	int err;

	st = prep(s, "SELECT key FROM secrets WHERE name=?", "s", name);
	if (!st)
		return EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		err = unwrap(s, "secret", name, st, 0, key);
		release(s, st);
		return err;
	}
	release(s, st);
	err = kms_random(key, 32);
	if (!err)
		err = wrap(s, "secret", name, key, w, &wl);
	if (!err)
		err = run(s, prep(s, "INSERT INTO secrets VALUES(?, ?)", "sb",
			       name, w, wl));
	return err;
}

/* ---- replay cache, failure counters ---- */

/** EALREADY if the nonce was seen (the cache survives restarts) */
int kms_seen_add(struct kms_store *s, const uint8_t nonce[KMS_RAND_LEN],
		 uint64_t t, uint64_t now)
{
	int err;

	(void)now;
	err = run(s, prep(s, "INSERT INTO seen VALUES(?, ?)", "bi", nonce,
		       (size_t)KMS_RAND_LEN, t));
	return err == EEXIST ? EALREADY : err;
}

int kms_fail_add(struct kms_store *s, const char *scope, uint64_t now)
{
	return run(s, prep(s, "INSERT INTO fails VALUES(?, ?)", "si", scope,
			now));
}

int kms_fail_count(struct kms_store *s, const char *scope, uint64_t now,
		   uint32_t *n)
{
	sqlite3_stmt *st;

	st = prep(s, "SELECT count(*) FROM fails WHERE scope=? AND t>?",
		  "si", scope, now - (uint64_t)s->cfg.fail_window);
	if (!st)
		return EIO;
	*n = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = (uint32_t)sqlite3_column_int64(st, 0);
	release(s, st);
	return 0;
}

/* ---- conferences ---- */

/**
 * Register conference ref for active join, or open an existing
 * passive-join conference for active join (TR 33.828 4.2.5 beside 7.4.3.5):
 * the operator acting for the conference's controller gives the same
 * focus the chairman's sealed statement named; the conference keeps its
 * reference, chairman and legs (active = 2), so an active joiner's leg key
 * lands beside the invitees' and the focus bridge fetches it by (ref, id).
 * EEXIST: already open for active join; EACCES: another focus;
 * EKEYEXPIRED: the conference expired.
 */
int kms_conf_register(struct kms_store *s, const char *ref,
		      const char *focus, const char *secret,
		      const char *const *eligible, size_t n_eligible,
		      uint64_t now, uint64_t expires)
{
	uint8_t kj[32], w[32 + KMS_SEAL_OVERHEAD];
	struct kms_conf c;
	size_t wl = 0, i;
	int err = 0, open;

	if (!ref || !*ref || strlen(ref) >= KMS_REF_MAX || !focus ||
	    !*focus || strlen(focus) >= KMS_ID_MAX ||
	    (!secret && !n_eligible))
		return EINVAL;
	err = kms_store_conf_get(s, ref, 0, &c);
	if (err && err != ENOENT)
		return err;
	open = !err;
	if (open) {
		if (c.active)
			return EEXIST;
		if (strcmp(c.focus, focus))
			return EACCES;
		if (now >= c.expires_s)
			return EKEYEXPIRED;
	}
	if (secret) {
		err = kms_join_key(secret, ref, kj);
		if (!err)
			err = wrap(s, "kjoin", ref, kj, w, &wl);
		kms_wipe(kj, sizeof(kj));
	}
	if (!err && open)
		err = run(s, prep(s, "UPDATE confs SET active=2, kjoin=?,"
				  " expires=max(expires, ?) WHERE ref=?"
				  " AND active=0", "bis", w, wl, expires,
				  ref));
	else if (!err)
		err = run(s, prep(s, "INSERT INTO confs"
				  " VALUES(?, ?, '', 1, ?, ?)",
			       "ssbi", ref, focus, w, wl, expires));
	for (i = 0; i < n_eligible && !err; i++)
		err = run(s, prep(s, "INSERT OR IGNORE INTO eligible"
			       " VALUES(?, ?)", "ss", ref, eligible[i]));
	kms_wipe(w, sizeof(w));
	return err;
}

/**
 * A passive-join conference exists once: the first request creates it,
 * later ones (also concurrent ones: one event loop, one transaction) must
 * name the same focus and chairman, else EACCES.
 */
int kms_conf_ensure(struct kms_store *s, const char *ref,
		    const char *focus, const char *chairman,
		    uint64_t expires)
{
	struct kms_conf c;
	int err;

	err = run(s, prep(s, "INSERT OR IGNORE INTO confs VALUES(?, ?, ?, 0,"
		       " NULL, ?)", "sssi", ref, focus, chairman, expires));
	if (err)
		return err;
	err = kms_store_conf_get(s, ref, 0, &c);
	if (err)
		return err;
	/* registered for active join only (1): no chairman may claim it;
	 * a passive conference opened for active join (2) still takes the
	 * chairman's further invitations */
	if (c.active == 1 || strcmp(c.focus, focus) ||
	    strcmp(c.chairman, chairman))
		return EACCES;
	/* a conference lives as long as its newest leg */
	if (expires > c.expires_s)
		err = run(s, prep(s, "UPDATE confs SET expires=? WHERE ref=?",
				  "is", expires, ref));
	return err;
}

int kms_conf_kjoin(struct kms_store *s, const char *ref, uint8_t kjoin[32])
{
	sqlite3_stmt *st;
	int err = ENOENT;

	st = prep(s, "SELECT kjoin FROM confs WHERE ref=? AND active<>0", "s",
		  ref);
	if (!st)
		return EIO;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_bytes(st, 0) > 0)
		err = unwrap(s, "kjoin", ref, st, 0, kjoin);
	release(s, st);
	return err;
}

int kms_conf_eligible(struct kms_store *s, const char *ref, const char *id)
{
	return exists(s, prep(s, "SELECT 1 FROM eligible WHERE ref=? AND id=?",
			   "ss", ref, id));
}

int kms_store_conf_get(struct kms_store *s, const char *conf_ref,
		       uint64_t now_s, struct kms_conf *out)
{
	sqlite3_stmt *st;
	int err = 0;

	if (!s || !conf_ref || !out)
		return EINVAL;
	memset(out, 0, sizeof(*out));
	st = prep(s, "SELECT focus, chairman, active, expires FROM confs"
		  " WHERE ref=?", "s", conf_ref);
	if (!st)
		return EIO;
	if (sqlite3_step(st) != SQLITE_ROW) {
		release(s, st);
		return ENOENT;
	}
	snprintf(out->conf_ref, sizeof(out->conf_ref), "%s", conf_ref);
	err = col_str(st, 0, out->focus, sizeof(out->focus));
	if (!err)
		err = col_str(st, 1, out->chairman, sizeof(out->chairman));
	out->active = sqlite3_column_int(st, 2);
	out->expires_s = (uint64_t)sqlite3_column_int64(st, 3);
	release(s, st);
	if (!err && now_s && now_s >= out->expires_s)
		err = EKEYEXPIRED;
	return err;
}

/* ---- legs ---- */

int kms_leg_set(struct kms_store *s, const char *ref, const char *who,
		const uint8_t key[32], uint64_t now, uint64_t expires,
		enum kms_leg_mode mode, uint32_t *gen)
{
	uint8_t w[32 + KMS_SEAL_OVERHEAD], pw[32 + KMS_SEAL_OVERHEAD];
	uint8_t prev[32];
	sqlite3_stmt *st;
	char row[KMS_REF_MAX + KMS_ID_MAX + 16];
	uint32_t g = 1;
	size_t wl, pwl;
	int err, have;

	st = prep(s, "SELECT gen, key FROM legs WHERE ref=? AND"
		  " participant=?", "ss", ref, who);
	if (!st)
		return EIO;
	have = sqlite3_step(st) == SQLITE_ROW;
	if (have) {
		g = (uint32_t)sqlite3_column_int64(st, 0);
		legrow(row, sizeof(row), ref, who, g);
		err = unwrap(s, "leg", row, st, 1, prev);
		release(s, st);
		if (err)
			return err;
		if (mode == KMS_LEG_KEEP) {
			kms_wipe(prev, sizeof(prev));
			if (gen)
				*gen = g;
			return 0;
		}
		g++;
	}
	else {
		release(s, st);
	}
	legrow(row, sizeof(row), ref, who, g);
	err = wrap(s, "leg", row, key, w, &wl);
	if (!err && have) {
		legrow(row, sizeof(row), ref, who, g - 1);
		err = wrap(s, "legprev", row, prev, pw, &pwl);
		if (!err)
			err = run(s, prep(s, "UPDATE legs SET gen=?, key=?,"
				       " prev_gen=?, prev_key=?, prev_until=?,"
				       " expires=max(expires, ?) WHERE ref=?"
				       " AND participant=?", "ibibiiss",
				       (uint64_t)g, w, wl, (uint64_t)(g - 1),
				       pw, pwl,
				       now + s->cfg.rekey_overlap, expires,
				       ref, who));
	}
	else if (!err) {
		err = run(s, prep(s, "INSERT INTO legs VALUES(?, ?, ?, ?, 0,"
			       " NULL, 0, ?)", "ssibi", ref, who,
			       (uint64_t)g, w, wl, expires));
	}
	kms_wipe(prev, sizeof(prev));
	if (!err && gen)
		*gen = g;
	return err;
}

int kms_store_legkey_get(struct kms_store *s, const char *conf_ref,
			 const char *participant, uint64_t now_s,
			 struct kms_legkey *out)
{
	char row[KMS_REF_MAX + KMS_ID_MAX + 16];
	struct kms_conf c;
	sqlite3_stmt *st;
	int err;

	if (!s || !conf_ref || !participant || !out)
		return EINVAL;
	memset(out, 0, sizeof(*out));
	err = kms_store_conf_get(s, conf_ref, now_s, &c);
	if (err)
		return err;
	st = prep(s, "SELECT gen, key, prev_gen, prev_key, prev_until,"
		  " expires FROM legs WHERE ref=? AND participant=?", "ss",
		  conf_ref, participant);
	if (!st)
		return EIO;
	if (sqlite3_step(st) != SQLITE_ROW) {
		release(s, st);
		return ENOENT;
	}
	snprintf(out->conf_ref, sizeof(out->conf_ref), "%s", conf_ref);
	snprintf(out->participant, sizeof(out->participant), "%s",
		 participant);
	memcpy(out->focus, c.focus, sizeof(out->focus));
	out->generation = (uint32_t)sqlite3_column_int64(st, 0);
	out->expires_s = (uint64_t)sqlite3_column_int64(st, 5);
	legrow(row, sizeof(row), conf_ref, participant, out->generation);
	err = unwrap(s, "leg", row, st, 1, out->key);
	out->prev_generation = (uint32_t)sqlite3_column_int64(st, 2);
	out->prev_until_s = (uint64_t)sqlite3_column_int64(st, 4);
	if (!err && out->prev_generation && now_s < out->prev_until_s) {
		legrow(row, sizeof(row), conf_ref, participant,
		       out->prev_generation);
		err = unwrap(s, "legprev", row, st, 3, out->prev_key);
		out->has_prev = !err;
	}
	release(s, st);
	if (!err && now_s >= out->expires_s)
		err = EKEYEXPIRED;
	if (err)
		kms_wipe(out, sizeof(*out));
	return err;
}

/* ---- calls ---- */

int kms_call_put(struct kms_store *s, const char *ref, const char *caller,
		 const char *callee, const char *xcoder,
		 const uint8_t key[32], uint64_t expires)
{
	uint8_t w[32 + KMS_SEAL_OVERHEAD];
	size_t wl;
	int err;

	err = wrap(s, "call", ref, key, w, &wl);
	if (!err)
		err = run(s, prep(s, "INSERT OR REPLACE INTO calls"
			       " VALUES(?, ?, ?, ?, ?, ?)", "ssssbi", ref,
			       caller, callee, xcoder ? xcoder : "", w, wl,
			       expires));
	return err;
}

int kms_store_callkey_get(struct kms_store *s, const char *call_ref,
			  const char *transcoder, uint64_t now_s,
			  struct kms_callkey *out)
{
	sqlite3_stmt *st;
	int err;

	if (!s || !call_ref || !transcoder || !out)
		return EINVAL;
	memset(out, 0, sizeof(*out));
	st = prep(s, "SELECT caller, callee, xcoder, key, expires FROM calls"
		  " WHERE ref=?", "s", call_ref);
	if (!st)
		return EIO;
	if (sqlite3_step(st) != SQLITE_ROW) {
		release(s, st);
		return ENOENT;
	}
	snprintf(out->call_ref, sizeof(out->call_ref), "%s", call_ref);
	err = col_str(st, 0, out->caller, sizeof(out->caller));
	if (!err)
		err = col_str(st, 1, out->callee, sizeof(out->callee));
	if (!err)
		err = col_str(st, 2, out->transcoder, sizeof(out->transcoder));
	out->expires_s = (uint64_t)sqlite3_column_int64(st, 4);
	if (!err && (!out->transcoder[0] ||
		     strcmp(out->transcoder, transcoder)))
		err = EACCES;
	if (!err && now_s >= out->expires_s)
		err = EKEYEXPIRED;
	if (!err)
		err = unwrap(s, "call", call_ref, st, 3, out->key);
	release(s, st);
	if (err)
		kms_wipe(out, sizeof(*out));
	return err;
}

/* ---- mailbox, audit ---- */

int kms_store_mailbox_set(struct kms_store *s, const char *user,
			  const char *mailbox)
{
	if (!user || !mailbox || strlen(user) >= KMS_ID_MAX ||
	    strlen(mailbox) >= KMS_ID_MAX)
		return EINVAL;
	return run(s, prep(s, "INSERT OR REPLACE INTO mailbox VALUES(?, ?)",
			"ss", user, mailbox));
}

int kms_store_mailbox_of(struct kms_store *s, const char *user,
			 char *mailbox, size_t mailbox_sz)
{
	sqlite3_stmt *st;
	int err = ENOENT;

	st = prep(s, "SELECT node FROM mailbox WHERE user=?", "s", user);
	if (!st)
		return EIO;
	if (sqlite3_step(st) == SQLITE_ROW)
		err = col_str(st, 0, mailbox, mailbox_sz);
	release(s, st);
	return err;
}

int kms_store_audit(struct kms_store *s, uint64_t now_s, const char *who,
		    const char *role, const char *what, const char *conf_ref,
		    const char *participant, const char *result)
{
	return run(s, prep(s, "INSERT INTO audit VALUES(?, ?, ?, ?, ?, ?, ?)",
			"issssss", now_s, who, role, what, conf_ref,
			participant, result));
}

/* ---- fixtures ---- */

int kms_store_fixture_conf(struct kms_store *s, const char *conf_ref,
			   const char *focus, const char *const *participants,
			   size_t n, uint64_t now_s, uint64_t expires_s,
			   uint8_t *keys_out)
{
	uint8_t k[32];
	size_t i;
	int err;

	err = kms_conf_ensure(s, conf_ref, focus, "", expires_s);
	for (i = 0; i < n && !err; i++) {
		err = kms_random(k, 32);
		if (!err)
			err = kms_leg_set(s, conf_ref, participants[i], k,
					  now_s, expires_s, KMS_LEG_NEWGEN,
					  NULL);
		if (!err && keys_out)
			memcpy(keys_out + i * 32, k, 32);
	}
	kms_wipe(k, sizeof(k));
	return err;
}

int kms_store_fixture_call(struct kms_store *s, const char *call_ref,
			   const char *caller, const char *callee,
			   const char *transcoder, uint64_t expires_s,
			   uint8_t key_out[KMS_KEY_LEN])
{
	uint8_t k[32];
	int err;

	err = kms_random(k, 32);
	if (!err)
		err = kms_call_put(s, call_ref, caller, callee, transcoder, k,
				   expires_s);
	if (!err && key_out)
		memcpy(key_out, k, 32);
	kms_wipe(k, sizeof(k));
	return err;
}
