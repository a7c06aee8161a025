/**
 * @file driver.c  Standalone replay driver for the libFuzzer targets
 *
 *   build/fuzz/T DIR_OR_FILE...
 *
 * Feeds every regular file found in the given directories (one level) or
 * named directly through LLVMFuzzerTestOneInput, once each, in a sorted
 * order, and prints "replayed N inputs".  A crash or a sanitizer report
 * fails the run; so does a missing path or an empty corpus.  Needs no
 * clang: it is how `make test` replays the committed corpora.
 */

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define INPUT_MAX (1u << 20)

static int run_file(const char *path, uint8_t *buf)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	uint8_t *copy;

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return errno ? errno : EIO;
	}
	n = fread(buf, 1, INPUT_MAX, f);
	fclose(f);
	/* an exact-size heap copy, so ASan sees any read past the end */
	copy = malloc(n ? n : 1);
	if (!copy)
		return ENOMEM;
	memcpy(copy, buf, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, uint8_t *buf, unsigned *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	int err = 0;

	if (!d)
		return errno;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn;

			cap = cap ? cap * 2 : 64;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				err = ENOMEM;
				break;
			}
			names = nn;
		}
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			err = ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (names)
		qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		if (!err && snprintf(path, sizeof(path), "%s/%s", dir,
				     names[i]) < (int)sizeof(path) &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			err = run_file(path, buf);
			if (!err)
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return err;
}

int main(int argc, char **argv)
{
	uint8_t *buf = malloc(INPUT_MAX);
	unsigned count = 0;
	int i, err = 0;

	if (!buf)
		return 1;
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc && !err; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			err = errno;
		}
		else if (S_ISDIR(st.st_mode))
			err = run_dir(argv[i], buf, &count);
		else if (run_file(argv[i], buf) == 0)
			count++;
		else
			err = EIO;
	}
	free(buf);
	printf("replayed %u inputs\n", count);
	if (err)
		return 1;
	return count ? 0 : 1;
}
