/*-------------------------------------------------------------------------
 *
 * definition_internal.h
 *	  What the pieces of the definition compiler share, and nobody else
 *	  needs.  The public API is definition.h.
 *
 * The compiler is split by concern:
 *	 definition.c			the walk over the grammar (states, rules,
 *							transitions, timers, events, persistence), the
 *							checks after it, md_compile() and the lookups
 *	 definition_arena.c		arenas, and the compiler's allocations from them
 *	 definition_error.c		JSON paths and "<path>: <problem>" messages
 *	 definition_interval.c	intervals ("30 minutes") and snapshot schedules
 *
 * Like definition.h, this header includes libc and json-c only, never server
 * headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_DEFINITION_INTERNAL_H
#define MACHINE_DEFINITION_INTERNAL_H

#include <string.h>

#include <json-c/json.h>

#include "definition.h"

#if defined(__GNUC__) || defined(__clang__)
#define MD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MD_PRINTF(f, a)
#endif

/* ----------------------------------------------------------------
 * Arenas (definition_arena.c)
 * ----------------------------------------------------------------
 */

/* A list of malloc'd chunks, released as a whole */
typedef struct MdArena MdArena;

extern MdArena *md_arena_create(void);
extern void md_arena_destroy(MdArena *arena);
extern void *md_arena_alloc(MdArena *arena, size_t size);

/* ----------------------------------------------------------------
 * JSON paths (rendered by definition_error.c)
 * ----------------------------------------------------------------
 */

/*
 * One step of the path from the root to the value being compiled.  Frames
 * live on the C stack; a path is rendered only for an error message or for
 * the record of a function's first use.
 */
typedef struct MdPath
{
	const struct MdPath *parent;	/* NULL at the root */
	const char *key;			/* an object member, or NULL: an element */
	size_t		index;			/* the element, when key is NULL */
} MdPath;

static inline const MdPath *
md_key(MdPath *frame, const MdPath *parent, const char *key)
{
	frame->parent = parent;
	frame->key = key;
	frame->index = 0;
	return frame;
}

static inline const MdPath *
md_elem(MdPath *frame, const MdPath *parent, size_t index)
{
	frame->parent = parent;
	frame->key = NULL;
	frame->index = index;
	return frame;
}

/* ----------------------------------------------------------------
 * The compiler's state (filled in by definition.c)
 * ----------------------------------------------------------------
 */

/* A slot of the hash table of distinct (name, kind) function pairs */
typedef struct MdFnSlot
{
	const char *name;			/* NULL: empty */
	MdFunctionKind kind;
	int			index;
} MdFnSlot;

/* A timer whose event the state must accept, checked once rules are known */
typedef struct MdTimerCheck
{
	int			state;
	const char *event_tag;
	const char *event;			/* compact JSON text */
	const char *path;
} MdTimerCheck;

typedef struct MdCompiler
{
	MachineDef *def;
	MdArena    *arena;			/* the definition's */
	MdArena    *scratch;		/* freed when md_compile returns */
	char	   *errbuf;
	size_t		errlen;

	/* functions, first use first; copied into the arena at the end */
	MdFunction *functions;
	int			nfunctions;
	int			maxfunctions;
	MdFnSlot   *slots;
	size_t		nslots;			/* a power of two, or 0 */

	MdTimerCheck *checks;
	int			nchecks;
	int			maxchecks;
} MdCompiler;

/*
 * Failures (definition_error.c): the first one is written into c->errbuf,
 * and each returns false so that the caller can return it at once
 */
extern bool md_fail(MdCompiler *c, const MdPath *at, const char *fmt,...)
			MD_PRINTF(3, 4);
extern bool md_fail_text(MdCompiler *c, const char *at_text,
						 const char *fmt,...) MD_PRINTF(3, 4);

/* Out of memory, reported by the arenas (definition_arena.c) */
extern bool md_oom(MdCompiler *c);

/* A message without a path into any buffer, for md_parse_interval() */
extern bool md_fail_buf(char *errbuf, size_t errlen, const char *fmt,...)
			MD_PRINTF(3, 4);

/* A path rendered into an arena (NULL, reported, when out of memory) */
extern char *md_path_string(MdCompiler *c, MdArena *arena,
							const MdPath *path);

/* The compiler's allocations (definition_arena.c); report out of memory */
extern void *md_alloc(MdCompiler *c, size_t n, size_t size);
extern char *md_strndup(MdCompiler *c, const char *s, size_t len);
extern char *md_strdup(MdCompiler *c, const char *s);
extern void *md_grow(MdCompiler *c, void *array, int used, int *max,
					 size_t elsize);

/* Leaf values (definition.c) */
extern bool md_get_string(MdCompiler *c, const MdPath *at, json_object *value,
						  const char **s, size_t *len);

/*
 * The text of "persistence.snapshotSchedule" (definition_interval.c) into
 * an MdPersistence
 */
extern bool md_compile_schedule_text(MdCompiler *c, const MdPath *at,
									 const char *text, size_t len,
									 MdPersistence *ps);

/* ----------------------------------------------------------------
 * Character classes
 * ----------------------------------------------------------------
 */

/* Locale-independent character classes: the server may change LC_CTYPE */
static inline bool
md_isspace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		ch == '\v' || ch == '\f';
}

static inline bool
md_word_eq(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

#endif							/* MACHINE_DEFINITION_INTERNAL_H */
