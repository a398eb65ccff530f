/*-------------------------------------------------------------------------
 *
 * definition_error.c
 *	  JSON paths and the compiler's error messages.
 *
 * Error messages are "<path>: <problem>", the path joining object keys with
 * "." and array elements as "[i]" (an empty key is written ""); problems
 * with the text as a whole use the path "definition".  The path of a value
 * is a chain of MdPath frames on the C stack (definition_internal.h),
 * rendered only when a message is written or a function's first use is
 * recorded.
 *
 * Messages go into the caller's buffer, cut to its size, always terminated,
 * and never cut inside a UTF-8 sequence: names may be any UTF-8 text, and
 * the server passes the message on as text.  So that a huge name cannot
 * push the reason out of the buffer, a key longer than MD_PATH_KEY_SHOWN
 * bytes is shown by its beginning and "...", and a problem too long for
 * the room left keeps its beginning and its end around "...".  A NULL or
 * empty buffer gets nothing.  The first failure is the one reported: every caller returns
 * false at once, so nothing overwrites it.
 *
 * Like the rest of the compiler this uses libc only, never server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "definition_internal.h"

/* ----------------------------------------------------------------
 * Bounded output
 * ----------------------------------------------------------------
 */

/*
 * A bounded output buffer that always stays NUL-terminated.  Once something
 * has been cut, nothing more is added: the text after a cut would otherwise
 * land where the dropped end of a UTF-8 sequence was, and the message would
 * read as if that character were not there.
 */
typedef struct MdOut
{
	char	   *buf;
	size_t		size;			/* 0: discard everything */
	size_t		len;
	bool		cut;			/* the buffer is full: add nothing more */
} MdOut;

static void
md_out_init(MdOut *out, char *buf, size_t size)
{
	out->buf = buf;
	out->size = buf != NULL ? size : 0;
	out->len = 0;
	out->cut = false;
	if (out->size > 0)
		buf[0] = '\0';
}

/*
 * After a cut at the end of the buffer, drop a partial UTF-8 sequence left
 * at the end so that the message stays valid text, and close the buffer.
 */
static void
md_out_cut(MdOut *out)
{
	size_t		lead = out->len;
	size_t		ncont = 0;
	size_t		need;
	unsigned char c;

	out->cut = true;
	while (lead > 0 && ncont < 3 &&
		   (((unsigned char) out->buf[lead - 1]) & 0xC0) == 0x80)
	{
		lead--;
		ncont++;
	}
	if (lead == 0)
		return;
	c = (unsigned char) out->buf[lead - 1];
	if (c < 0x80)
		return;					/* no sequence was cut */
	if ((c & 0xE0) == 0xC0)
		need = 2;
	else if ((c & 0xF0) == 0xE0)
		need = 3;
	else
		need = 4;
	if (ncont + 1 < need)
	{
		out->len = lead - 1;
		out->buf[out->len] = '\0';
	}
}

static void
md_out_append(MdOut *out, const char *s, size_t n)
{
	size_t		room;

	if (out->size == 0 || out->cut)
		return;
	room = out->size - 1 - out->len;
	if (n > room)
	{
		memcpy(out->buf + out->len, s, room);
		out->len += room;
		out->buf[out->len] = '\0';
		md_out_cut(out);
		return;
	}
	memcpy(out->buf + out->len, s, n);
	out->len += n;
	out->buf[out->len] = '\0';
}

static void md_out_vprintf(MdOut *out, const char *fmt, va_list ap)
MD_PRINTF(2, 0);

static void
md_out_vprintf(MdOut *out, const char *fmt, va_list ap)
{
	size_t		room;
	int			n;

	if (out->size == 0 || out->cut)
		return;
	room = out->size - out->len;
	n = vsnprintf(out->buf + out->len, room, fmt, ap);
	if (n < 0)
		out->buf[out->len] = '\0';
	else if ((size_t) n >= room)
	{
		out->len = out->size - 1;
		md_out_cut(out);
	}
	else
		out->len += (size_t) n;
}

/* ----------------------------------------------------------------
 * Paths
 * ----------------------------------------------------------------
 */

/* Keys longer than this are shown by their first bytes and "..." */
#define MD_PATH_KEY_SHOWN 64

static bool
md_is_continuation(char ch)
{
	return (((unsigned char) ch) & 0xC0) == 0x80;
}

/* How many bytes of a key a path shows: all, or a prefix of whole characters */
static size_t
md_key_shown(const char *key, bool *abbreviated)
{
	size_t		len = strlen(key);
	size_t		shown = MD_PATH_KEY_SHOWN;

	*abbreviated = len > MD_PATH_KEY_SHOWN + 3;
	if (!*abbreviated)
		return len;
	while (shown > 0 && md_is_continuation(key[shown]))
		shown--;
	return shown;
}

static void
md_out_key(MdOut *out, const char *key)
{
	bool		abbreviated;
	size_t		shown = md_key_shown(key, &abbreviated);

	md_out_append(out, key, shown);
	if (abbreviated)
		md_out_append(out, "...", 3);
}

/* Render a path, root first; the recursion is as deep as the JSON nesting */
static void
md_out_path(MdOut *out, const MdPath *path)
{
	char		index[32];
	int			n;

	if (path->parent != NULL)
		md_out_path(out, path->parent);
	if (path->key != NULL)
	{
		if (path->parent != NULL)
			md_out_append(out, ".", 1);
		if (path->key[0] == '\0')
			md_out_append(out, "\"\"", 2);
		else
			md_out_key(out, path->key);
	}
	else
	{
		n = snprintf(index, sizeof(index), "[%zu]", path->index);
		if (n > 0)
			md_out_append(out, index, (size_t) n);
	}
}

/* The length of the rendered path, without a terminator */
static size_t
md_path_len(const MdPath *path)
{
	char		index[32];
	size_t		len = 0;
	int			n;

	for (; path != NULL; path = path->parent)
	{
		if (path->key != NULL)
		{
			bool		abbreviated;

			len += path->parent != NULL ? 1 : 0;
			len += path->key[0] == '\0' ? 2 :
				md_key_shown(path->key, &abbreviated) + (abbreviated ? 3 : 0);
		}
		else
		{
			n = snprintf(index, sizeof(index), "[%zu]", path->index);
			if (n > 0)
				len += (size_t) n;
		}
	}
	return len;
}

/* A copy of the rendered path, in the arena given */
char *
md_path_string(MdCompiler *c, MdArena *arena, const MdPath *path)
{
	size_t		len = md_path_len(path);
	char	   *result;
	MdOut		out;

	result = md_arena_alloc(arena, len + 1);
	if (result == NULL)
	{
		md_oom(c);
		return NULL;
	}
	md_out_init(&out, result, len + 1);
	md_out_path(&out, path);
	return result;
}

/* ----------------------------------------------------------------
 * Failures
 * ----------------------------------------------------------------
 */

/*
 * Append text, keeping its beginning and its end around "..." when it does
 * not fit: a problem names a value first and says what is wrong at the end.
 */
static void
md_out_elided(MdOut *out, const char *text, size_t len)
{
	size_t		room;
	size_t		keep;
	size_t		head;
	size_t		tail;

	if (out->size == 0 || out->cut)
		return;
	room = out->size - 1 - out->len;
	if (len <= room || room < 16)
	{
		md_out_append(out, text, len);
		return;
	}
	keep = (room - 3) / 2;
	head = keep;
	while (head > 0 && md_is_continuation(text[head]))
		head--;
	tail = len - keep;
	while (tail < len && md_is_continuation(text[tail]))
		tail++;
	md_out_append(out, text, head);
	md_out_append(out, "...", 3);
	md_out_append(out, text + tail, len - tail);
}

static bool md_vfail(MdCompiler *c, const MdPath *at, const char *at_text,
					 const char *fmt, va_list ap)
MD_PRINTF(4, 0);

static bool
md_vfail(MdCompiler *c, const MdPath *at, const char *at_text,
		 const char *fmt, va_list ap)
{
	MdOut		out;

	va_list		measure;
	int			n;
	char	   *problem;

	md_out_init(&out, c->errbuf, c->errlen);
	if (at != NULL)
		md_out_path(&out, at);
	else if (at_text != NULL)
		md_out_append(&out, at_text, strlen(at_text));
	else
		md_out_append(&out, "definition", strlen("definition"));
	md_out_append(&out, ": ", 2);

	va_copy(measure, ap);
	n = vsnprintf(NULL, 0, fmt, measure);
	va_end(measure);
	problem = n >= 0 ? malloc((size_t) n + 1) : NULL;
	if (problem == NULL)
	{
		md_out_vprintf(&out, fmt, ap);
		return false;
	}
	vsnprintf(problem, (size_t) n + 1, fmt, ap);
	md_out_elided(&out, problem, (size_t) n);
	free(problem);
	return false;
}

/* Report a problem at a path (NULL: the definition); always returns false */
bool
md_fail(MdCompiler *c, const MdPath *at, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	md_vfail(c, at, NULL, fmt, ap);
	va_end(ap);
	return false;
}

/* The same, at a path rendered earlier */
bool
md_fail_text(MdCompiler *c, const char *at_text, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	md_vfail(c, NULL, at_text, fmt, ap);
	va_end(ap);
	return false;
}

/*
 * A message alone, without a path, into a caller's buffer, as
 * md_parse_interval() reports; always returns false
 */
bool
md_fail_buf(char *errbuf, size_t errlen, const char *fmt,...)
{
	MdOut		out;
	va_list		ap;

	md_out_init(&out, errbuf, errlen);
	va_start(ap, fmt);
	md_out_vprintf(&out, fmt, ap);
	va_end(ap);
	return false;
}

