/** @file kms_msg.c  libFuzzer target: kmsd's UE message handling */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms_nds/kms_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kms_store *store;

/*
 * One in-memory store with identities, a group, a mailbox and an active
 * conference, so requests get past the lookups.  The time is fixed.
 */
static void init(void)
{
	static const uint8_t skey[32] = { 0x4b, 0x4d, 0x53 };
	static const char *const el[] = { "bob" };
	uint8_t cred[32];

	if (store || kms_store_open_key(&store, ":memory:", skey))
		return;
	kms_id_add(store, "alice", cred);
	kms_id_add(store, "bob", cred);
	kms_group_add(store, "sales", "bob");
	kms_store_mailbox_set(store, "bob", "vm1");
	kms_conf_register(store, "team", "bridge1", "pw", el, 1, 0,
			  2000000000);
	kms_wipe(cred, sizeof(cred));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kms_req_ctx ctx = { .now = 1800000000, .has_exporter = 1 };
	uint8_t buf[2 * KMS_BLOB_MAX + 2];
	const uint8_t *t, *s;
	struct kms_fields f;
	struct kms_seal_hdr h;
	char *resp = NULL, *str;
	size_t tl, sl;

	init();
	if (!store)
		abort();
	/* the whole request path: JSON, fields, statements, tokens */
	if (kms_handle(store, &ctx, (const char *)data, size, &resp) == 0)
		free(resp);
	/* the byte-level parsers on their own (post-decryption content) */
	kms_fparse(data, size, &f);
	kms_seal_peek(data, size, &h);
	str = malloc(size + 1);
	if (!str)
		return 0;
	memcpy(str, data, size);
	str[size] = '\0';
	kms_stmt_decode(str, buf, sizeof(buf), &t, &tl, &s, &sl);
	free(str);
	return 0;
}
