/*-------------------------------------------------------------------------
 *
 * slice.h
 *	  The slice of an actor id: a hash of the id's bytes that is the same on
 *	  every server, CPU architecture and release.
 *
 * An actor id's slice decides which shard of a cluster keeps the actor, so
 * the hash is part of the on-disk contract: changing it would strand every
 * actor of a cluster on the wrong shard.  It is defined on the id's UTF-8
 * bytes, one at a time, so byte order and word size never enter:
 *
 *	 h = 2166136261
 *	 for each byte b:  h = (h XOR b) * 16777619	(mod 2^32; 32-bit FNV-1a)
 *	 h = h XOR (h >> 16);  h = h * 0x85ebca6b;		(murmur3's fmix32,
 *	 h = h XOR (h >> 13);  h = h * 0xc2b2ae35;		 which spreads FNV's
 *	 h = h XOR (h >> 16)							 weak low bits)
 *	 slice = h AND (slices - 1)						(slices a power of two)
 *
 * Every multiplication is of unsigned 32-bit integers, modulo 2^32.  The
 * function has no server headers, so the unit tests compile it as it is.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_SLICE_H
#define MACHINE_SLICE_H

#include <stddef.h>
#include <stdint.h>

#define MACHINE_SLICES_MAX 65536

/* The 32-bit hash of len bytes, before it is cut down to a slice */
static inline uint32_t
machine_slice_hash(const unsigned char *bytes, size_t len)
{
	uint32_t	h = UINT32_C(2166136261);
	size_t		i;

	for (i = 0; i < len; i++)
	{
		h ^= (uint32_t) bytes[i];
		h *= UINT32_C(16777619);
	}
	h ^= h >> 16;
	h *= UINT32_C(0x85ebca6b);
	h ^= h >> 13;
	h *= UINT32_C(0xc2b2ae35);
	h ^= h >> 16;
	return h;
}

/* Is slices a valid number of slices: a power of two in 1..65536? */
static inline int
machine_slices_valid(long slices)
{
	return slices >= 1 && slices <= MACHINE_SLICES_MAX &&
		(slices & (slices - 1)) == 0;
}

/* The slice of an id among slices (which machine_slices_valid accepts) */
static inline uint32_t
machine_slice(const unsigned char *bytes, size_t len, uint32_t slices)
{
	return machine_slice_hash(bytes, len) & (slices - 1);
}

#endif							/* MACHINE_SLICE_H */
