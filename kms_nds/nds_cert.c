/**
 * @file nds_cert.c  Identity and role of an NDS node from its certificate
 *
 * Identity: the first subjectAltName dNSName, else the subject CN.
 * Role: exactly one subjectAltName URI "keymix-role:<role>" with role one
 * of bridge, transcoder, mailbox, kms.  Chain, validity period, CA and key
 * usage are checked by OpenSSL during the handshake; this file only names
 * what a verified certificate says.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kms_nds/nds_int.h"

#define ROLE_PREFIX "keymix-role:"

static const char *const role_names[] = {
	[NDS_ROLE_NONE]       = "none",
	[NDS_ROLE_BRIDGE]     = "bridge",
	[NDS_ROLE_TRANSCODER] = "transcoder",
	[NDS_ROLE_MAILBOX]    = "mailbox",
	[NDS_ROLE_KMS]        = "kms",
};

const char *nds_role_name(enum nds_role role)
{
	if ((unsigned)role >= sizeof(role_names) / sizeof(role_names[0]))
		return "none";
	return role_names[role];
}

int nds_role_parse(const char *s, size_t len, enum nds_role *rolep)
{
	size_t i;

	if (!s || !rolep)
		return EINVAL;
	for (i = NDS_ROLE_BRIDGE;
	     i < sizeof(role_names) / sizeof(role_names[0]); i++) {
		if (strlen(role_names[i]) == len &&
		    !memcmp(role_names[i], s, len)) {
			*rolep = (enum nds_role)i;
			return 0;
		}
	}
	return ENOENT;
}

static void why_set(char *why, size_t whysz, const char *msg)
{
	if (why && whysz)
		snprintf(why, whysz, "%s", msg);
}

static int str_copy_id(const unsigned char *p, int n, char *id, size_t idsz)
{
	if (n <= 0 || !nds_id_valid(p, (size_t)n) || (size_t)n >= idsz)
		return EBADMSG;
	memcpy(id, p, (size_t)n);
	id[n] = '\0';
	return 0;
}

/* Walk the SAN: first DNS name into id (if found), the role URIs. */
static int san_scan(X509 *x, char *id, size_t idsz, int *have_id,
		    enum nds_role *rolep, int *nroles, int *badrole)
{
	GENERAL_NAMES *gens;
	int i, err = 0;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (!gens)
		return 0;
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *p;
		int n;

		if (g->type == GEN_DNS && !*have_id) {
			p = ASN1_STRING_get0_data(g->d.dNSName);
			n = ASN1_STRING_length(g->d.dNSName);
			err = str_copy_id(p, n, id, idsz);
			if (err)
				break;
			*have_id = 1;
		}
		else if (g->type == GEN_URI) {
			const ASN1_IA5STRING *u;
			size_t pl = strlen(ROLE_PREFIX);
			enum nds_role r;

			u = g->d.uniformResourceIdentifier;
			p = ASN1_STRING_get0_data(u);
			n = ASN1_STRING_length(u);
			if (n <= 0 || (size_t)n <= pl ||
			    memcmp(p, ROLE_PREFIX, pl))
				continue;
			if (nds_role_parse((const char *)p + pl,
					   (size_t)n - pl, &r)) {
				*badrole = 1;
				continue;
			}
			*rolep = r;
			(*nroles)++;
		}
	}
	GENERAL_NAMES_free(gens);
	return err;
}

static int cn_get(X509 *x, char *id, size_t idsz)
{
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_ENTRY *ne;
	ASN1_STRING *s;
	int idx;

	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0)
		return ENOENT;
	/* More than one CN is ambiguous. */
	if (X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
		return EBADMSG;
	ne = X509_NAME_get_entry(name, idx);
	s = X509_NAME_ENTRY_get_data(ne);
	return str_copy_id(ASN1_STRING_get0_data(s), ASN1_STRING_length(s),
			   id, idsz);
}

/**
 * Identity and role of a (verified) certificate.  Returns 0, ENOENT when
 * it names no identity, EBADMSG when the identity has characters outside
 * printable ASCII, EACCES when it carries no role, an unknown role or
 * more than one role.  why gets a reason for the audit log and the peer.
 */
int nds_cert_identity(const void *x509, char *id, size_t idsz,
		      enum nds_role *rolep, char *why, size_t whysz)
{
	X509 *x = (X509 *)x509;
	enum nds_role role = NDS_ROLE_NONE;
	int have_id = 0, nroles = 0, badrole = 0, err;

	if (!x || !id || !idsz || !rolep)
		return EINVAL;
	id[0] = '\0';
	err = san_scan(x, id, idsz, &have_id, &role, &nroles, &badrole);
	if (err) {
		why_set(why, whysz, "certificate SAN DNS name not usable");
		return err;
	}
	if (!have_id) {
		err = cn_get(x, id, idsz);
		if (err) {
			why_set(why, whysz, "certificate names no identity");
			return err;
		}
	}
	if (nroles != 1 || badrole) {
		why_set(why, whysz, nroles > 1 ?
			"certificate carries more than one role" :
			badrole ? "certificate carries an unknown role" :
			"certificate carries no keymix-role");
		return EACCES;
	}
	*rolep = role;
	return 0;
}
