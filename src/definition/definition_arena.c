/*-------------------------------------------------------------------------
 *
 * definition_arena.c
 *	  The arenas that hold a compiled definition and the compiler's work
 *	  space, and the compiler's allocations from them.
 *
 * A compiled definition lives in one arena of malloc'd chunks, released as
 * a whole by md_free(), so that md_compile() never leaks whatever its input
 * and the server can keep a definition in a cache with one pointer.  Work
 * space that the result does not need (the function hash table, the pending
 * timer checks) lives in a second arena freed before md_compile() returns.
 *
 * Chunks double in size up to MD_MAX_CHUNK; a request of a quarter of the
 * next chunk or more gets a chunk of its own, kept behind the current one,
 * so that a huge array does not waste the rest of the current chunk.  A
 * request is checked against overflow before it is rounded up.
 *
 * Like the rest of the compiler this uses libc only, never server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "definition_internal.h"

/*
 * The unit test builds this file with MD_TEST_ALLOC to inject allocation
 * failures; everybody else gets plain malloc and free.
 */
#ifdef MD_TEST_ALLOC
extern void *md_test_malloc(size_t size);
extern void md_test_free(void *ptr);
#define MD_MALLOC(size) md_test_malloc(size)
#define MD_FREE(ptr) md_test_free(ptr)
#else
#define MD_MALLOC(size) malloc(size)
#define MD_FREE(ptr) free(ptr)
#endif

/* ----------------------------------------------------------------
 * Arenas
 * ----------------------------------------------------------------
 */

typedef union MdAlign
{
	long double ld;
	double		d;
	long long	ll;
	void	   *p;
	void		(*fp) (void);
} MdAlign;

#define MD_ALIGN_UP(n) \
	((((n) + sizeof(MdAlign) - 1) / sizeof(MdAlign)) * sizeof(MdAlign))

typedef struct MdChunk
{
	struct MdChunk *next;
	size_t		size;			/* bytes, header included */
	size_t		used;			/* bytes, header included */
} MdChunk;

struct MdArena
{
	MdChunk    *chunks;			/* the current chunk first */
	size_t		next_size;		/* size of the next ordinary chunk */
};

#define MD_CHUNK_HEADER MD_ALIGN_UP(sizeof(MdChunk))
#define MD_FIRST_CHUNK	((size_t) 8192)
#define MD_MAX_CHUNK	((size_t) 1024 * 1024)

/*
 * Create an arena.  The MdArena itself lives in its first chunk, which is
 * the last one in the list.
 */
MdArena *
md_arena_create(void)
{
	MdChunk    *chunk;
	MdArena    *arena;

	chunk = MD_MALLOC(MD_FIRST_CHUNK);
	if (chunk == NULL)
		return NULL;
	chunk->next = NULL;
	chunk->size = MD_FIRST_CHUNK;
	chunk->used = MD_CHUNK_HEADER;
	arena = (MdArena *) ((char *) chunk + chunk->used);
	chunk->used += MD_ALIGN_UP(sizeof(MdArena));
	arena->chunks = chunk;
	arena->next_size = MD_FIRST_CHUNK * 2;
	return arena;
}

void
md_arena_destroy(MdArena *arena)
{
	MdChunk    *chunk;

	if (arena == NULL)
		return;
	chunk = arena->chunks;
	while (chunk != NULL)
	{
		MdChunk    *next = chunk->next;

		MD_FREE(chunk);
		chunk = next;
	}
}

/*
 * Report running out of memory; always returns false.  Here, beside the
 * allocations that fail, so that the arenas need nothing of the error
 * module, which allocates its path texts from them.
 */
bool
md_oom(MdCompiler *c)
{
	if (c->errbuf != NULL && c->errlen > 0)
		snprintf(c->errbuf, c->errlen, "%s", "definition: out of memory");
	return false;
}

/* Zeroed, aligned memory from the arena, or NULL when out of memory */
void *
md_arena_alloc(MdArena *arena, size_t size)
{
	MdChunk    *chunk = arena->chunks;
	MdChunk    *fresh;
	char	   *result;

	if (size == 0)
		size = 1;
	if (size > SIZE_MAX / 2 - MD_CHUNK_HEADER - sizeof(MdAlign))
		return NULL;
	size = MD_ALIGN_UP(size);

	if (chunk->size - chunk->used >= size)
	{
		result = (char *) chunk + chunk->used;
		chunk->used += size;
		memset(result, 0, size);
		return result;
	}

	if (size >= arena->next_size / 4)
	{
		/* A chunk of its own, kept behind the current one */
		fresh = MD_MALLOC(MD_CHUNK_HEADER + size);
		if (fresh == NULL)
			return NULL;
		fresh->size = fresh->used = MD_CHUNK_HEADER + size;
		fresh->next = chunk->next;
		chunk->next = fresh;
	}
	else
	{
		fresh = MD_MALLOC(arena->next_size);
		if (fresh == NULL)
			return NULL;
		fresh->size = arena->next_size;
		fresh->used = MD_CHUNK_HEADER + size;
		fresh->next = chunk;
		arena->chunks = fresh;
		if (arena->next_size < MD_MAX_CHUNK)
			arena->next_size *= 2;
	}
	result = (char *) fresh + MD_CHUNK_HEADER;
	memset(result, 0, size);
	return result;
}

/* ----------------------------------------------------------------
 * The compiler's allocations
 * ----------------------------------------------------------------
 */

/* Zeroed memory for the definition; reports running out of memory */
void *
md_alloc(MdCompiler *c, size_t n, size_t size)
{
	void	   *result;

	if (size != 0 && n > SIZE_MAX / size)
	{
		md_oom(c);
		return NULL;
	}
	result = md_arena_alloc(c->arena, n * size);
	if (result == NULL)
		md_oom(c);
	return result;
}

char *
md_strndup(MdCompiler *c, const char *s, size_t len)
{
	char	   *result;

	if (len == SIZE_MAX)
	{
		md_oom(c);
		return NULL;
	}
	result = md_alloc(c, len + 1, 1);
	if (result != NULL)
		memcpy(result, s, len);
	return result;
}

char *
md_strdup(MdCompiler *c, const char *s)
{
	return md_strndup(c, s, strlen(s));
}

/*
 * Make room for one more element in an array kept in the scratch arena.
 * Returns the (maybe moved) array, or NULL when out of memory.
 */
void *
md_grow(MdCompiler *c, void *array, int used, int *max, size_t elsize)
{
	void	   *fresh;
	int			newmax;

	if (used < *max)
		return array;
	if (*max > INT_MAX / 2)
	{
		md_oom(c);
		return NULL;
	}
	newmax = *max > 0 ? *max * 2 : 16;
	fresh = md_arena_alloc(c->scratch, (size_t) newmax * elsize);
	if (fresh == NULL)
	{
		md_oom(c);
		return NULL;
	}
	if (used > 0)
		memcpy(fresh, array, (size_t) used * elsize);
	*max = newmax;
	return fresh;
}
