/**
 * @file tools.h  Test tools: the network impairment model behind `impair`
 *
 * struct impair decides, for each packet given to it, whether it is lost
 * (Gilbert-Elliott two-state bursts), how long it is held (uniform jitter,
 * which reorders packets whose spacing is below the jitter) and whether it
 * is duplicated, and holds the packets in a fixed pool until they are due.
 * Everything is seeded: one seed and one input sequence always give the
 * same output sequence.  Nothing allocates after impair_alloc().
 *
 * All functions returning int return 0 or an errno value.
 */

#ifndef TOOLS_H
#define TOOLS_H

#include <stddef.h>
#include <stdint.h>

/** Largest packet the impairment queue holds */
#define IMPAIR_PKT_MAX 2048

/** Impairment settings (zeroed struct = a perfect network) */
struct impair_cfg {
	uint64_t seed;       /**< PRNG seed (0 is a valid seed)             */
	double loss;         /**< long-run loss ratio 0..<1                 */
	double burst;        /**< mean loss burst length in packets (>= 1;
				  0 = 1: independent losses)              */
	uint32_t jitter_us;  /**< each copy held uniform 0..jitter_us       */
	uint32_t delay_us;   /**< fixed delay added to every copy           */
	double dup;          /**< probability a packet is sent twice        */
	unsigned queue;      /**< packets held at most (0 = 1024)           */
};

/** What the model did (one direction) */
struct impair_counts {
	uint64_t in;         /**< packets given to impair_push()            */
	uint64_t dropped;    /**< lost by the loss model                    */
	uint64_t bursts;     /**< runs of consecutive losses                */
	uint64_t max_burst;  /**< longest run of consecutive losses         */
	uint64_t duplicated; /**< extra copies made                         */
	uint64_t overflow;   /**< dropped because the queue was full        */
	uint64_t out;        /**< copies released by impair_pop()           */
	uint64_t reordered;  /**< released after a later-pushed packet      */
	uint64_t max_delay_us; /**< longest hold of any copy                */
};

struct impair;

int impair_alloc(struct impair **imp, const struct impair_cfg *cfg);
struct impair *impair_free(struct impair *imp);
int impair_push(struct impair *imp, const uint8_t *pkt, size_t len,
		uint64_t now_us);
int impair_pop(struct impair *imp, uint64_t now_us, uint8_t *buf,
	       size_t cap, size_t *lenp);
int64_t impair_next_due(const struct impair *imp);
void impair_counts_get(const struct impair *imp, struct impair_counts *c);
int impair_counts_json(const struct impair_counts *c, char *buf,
		       size_t size);

/* the PRNG, exposed for tests */
uint64_t impair_rand(uint64_t *state);
double impair_rand_unit(uint64_t *state);

#endif
