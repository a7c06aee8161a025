/**
 * @file bridge.h  The conference bridge (MRFP): daemon core and control API
 *
 * One struct bridge owns the control listener (HTTP/JSON), the NDS client
 * and N worker threads; each worker owns whole conferences, their legs and
 * the legs' keyleg contexts.  See docs/architecture.md.
 */

#ifndef BRIDGE_H
#define BRIDGE_H

#include <stddef.h>
#include <stdint.h>

enum bridge_log_level {
	BRIDGE_LOG_ERROR = 0,
	BRIDGE_LOG_WARN,
	BRIDGE_LOG_INFO,
	BRIDGE_LOG_DEBUG,
};

#define BRIDGE_PATH_MAX 512
#define BRIDGE_HOST_MAX 256

/** Configuration: command line, optionally seeded by --config FILE */
struct bridge_cfg {
	char control_host[BRIDGE_HOST_MAX]; /**< literal IPv4/IPv6 address */
	uint16_t control_port;              /**< 0 = pick a free port      */
	char token_file[BRIDGE_PATH_MAX];
	uint16_t port_lo, port_hi;          /**< RTP port range, inclusive */
	unsigned workers;                   /**< 0 = number of CPUs        */
	char kms_host[BRIDGE_HOST_MAX];     /**< empty: no KMS key source  */
	uint16_t kms_port;
	char nds_cert[BRIDGE_PATH_MAX];
	char nds_key[BRIDGE_PATH_MAX];
	char nds_ca[BRIDGE_PATH_MAX];
	unsigned kms_timeout_ms;            /**< NDS request timeout       */
	char config_file[BRIDGE_PATH_MAX];
	enum bridge_log_level log_level;
	char user[64];                      /**< drop to this user         */
	unsigned max_legs_per_worker;       /**< overload limit (503)      */
	unsigned max_load_permille;         /**< tick budget limit (503)   */
	unsigned rtcp_interval_ms;          /**< RTCP report interval      */
	unsigned leg_timeout_ms;            /**< free a receiving leg that
						 sent nothing this long
						 (0 = never)              */
	char control_cert[BRIDGE_PATH_MAX]; /**< TLS for the control API   */
	char control_key[BRIDGE_PATH_MAX];  /**< (--config only)           */
	unsigned send_io_uring;             /**< 1: a pass's sends in one
						 io_uring submission, where
						 the kernel allows it; 0:
						 sendmmsg per socket      */
};

struct bridge;

/* configuration */
void bridge_cfg_defaults(struct bridge_cfg *cfg);
int bridge_cfg_parse(struct bridge_cfg *cfg, int argc, char *const argv[],
		     char *err, size_t errsz);
int bridge_cfg_load_file(struct bridge_cfg *cfg, const char *path,
			 char *err, size_t errsz);
int bridge_addr_is_loopback(const char *host);

/* logging (stderr only) */
void bridge_log_set_level(enum bridge_log_level level);
void bridge_log(enum bridge_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* daemon */
int bridge_alloc(struct bridge **bp, const struct bridge_cfg *cfg,
		 char *err, size_t errsz);
int bridge_control_addr(const struct bridge *b, char *buf, size_t sz);
int bridge_run(struct bridge *b);
void bridge_stop(struct bridge *b);
int bridge_reload(struct bridge *b);
struct bridge *bridge_free(struct bridge *b);
int bridge_drop_privileges(const char *user, char *err, size_t errsz);

#endif
