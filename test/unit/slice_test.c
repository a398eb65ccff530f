/*-------------------------------------------------------------------------
 *
 * slice_test.c
 *	  Unit tests of the slice hash (src/slice.h): fixed test vectors, the
 *	  same on every platform, and the range of the number of slices.
 *
 * The vectors were computed with an independent implementation of the
 * documented algorithm; they must never change, since a cluster's actors
 * live on the shard their slice maps to.  sql/slice.sql checks the same
 * vectors through the server.
 *
 * Output is TAP.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "slice.h"

static int	tests = 0;
static int	failures = 0;

static void
check(int ok, const char *what)
{
	tests++;
	if (!ok)
		failures++;
	printf("%sok %d - %s\n", ok ? "" : "not ", tests, what);
}

typedef struct Vector
{
	const char *id;				/* UTF-8 */
	uint32_t	hash;
	uint32_t	slice_1024;
} Vector;

static const Vector vectors[] = {
	{"", 2872998923u, 11},
	{"a", 444641715u, 435},
	{"order-1", 2449496732u, 668},
	{"order-2", 2010665664u, 704},
	{"user:42", 599759890u, 18},
	{"h\xc3\xa9llo", 4198468525u, 941},
	{"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", 2594288994u, 354},
	{"\xc3\xa9\xf0\x9f\x98\x80", 166440505u, 569},
};

int
main(void)
{
	char		buf[80];
	char		xs[255];
	size_t		i;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
	{
		const Vector *v = &vectors[i];
		size_t		len = strlen(v->id);
		uint32_t	h = machine_slice_hash((const unsigned char *) v->id, len);

		snprintf(buf, sizeof(buf), "hash of vector %zu is %u", i, v->hash);
		check(h == v->hash, buf);
		snprintf(buf, sizeof(buf), "slice of vector %zu among 1024 is %u",
				 i, v->slice_1024);
		check(machine_slice((const unsigned char *) v->id, len, 1024) ==
			  v->slice_1024, buf);
		check(machine_slice((const unsigned char *) v->id, len, 1) == 0,
			  "one slice holds every id");
	}

	memset(xs, 'x', sizeof(xs));
	check(machine_slice_hash((const unsigned char *) xs, sizeof(xs)) ==
		  364276906u, "hash of 255 times x");

	check(machine_slices_valid(1) && machine_slices_valid(2) &&
		  machine_slices_valid(1024) && machine_slices_valid(65536),
		  "powers of two from 1 to 65536 are valid");
	check(!machine_slices_valid(0) && !machine_slices_valid(-1024) &&
		  !machine_slices_valid(3) && !machine_slices_valid(1000) &&
		  !machine_slices_valid(131072),
		  "anything else is not");

	printf("1..%d\n", tests);
	return failures > 0;
}
