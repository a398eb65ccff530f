/*-------------------------------------------------------------------------
 *
 * definition_interval.c
 *	  Intervals ("30 minutes", "1 hour 30 minutes", "1.5 hours", "10s") for
 *	  timers' delays and spaced snapshots, and the snapshot schedules of
 *	  "persistence.snapshotSchedule".
 *
 * md_parse_interval() is public (definition.h) and its messages have no
 * path; the compiler adds the path of the value it parsed.  Only units of a
 * fixed length are accepted: months and years are refused with a hint.
 * Numbers are read digit by digit in 64-bit unsigned arithmetic, with every
 * product and sum checked against INT64_MAX, so that no input overflows or
 * goes through a double.
 *
 * Parsing is locale-independent (the server may change LC_CTYPE), and like
 * the rest of the compiler this file uses libc and json-c only, never
 * server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "definition_internal.h"

#define MD_UNITS_HINT \
	"use microseconds, milliseconds, seconds, minutes, hours, days or weeks"

/* ----------------------------------------------------------------
 * Intervals
 * ----------------------------------------------------------------
 */

/* Locale-independent, like md_isspace() */
static bool
md_isdigit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* Whether s[0..len) equals word, ignoring ASCII case */
static bool
md_word_ieq(const char *s, size_t len, const char *word)
{
	size_t		i;

	if (strlen(word) != len)
		return false;
	for (i = 0; i < len; i++)
	{
		char		a = s[i];
		char		b = word[i];

		if (a >= 'A' && a <= 'Z')
			a = (char) (a - 'A' + 'a');
		if (a != b)
			return false;
	}
	return true;
}

typedef struct MdUnit
{
	const char *name;
	int64_t		us;
} MdUnit;

static const MdUnit md_units[] = {
	{"microsecond", 1}, {"microseconds", 1}, {"us", 1},
	{"millisecond", 1000}, {"milliseconds", 1000}, {"ms", 1000},
	{"second", 1000000}, {"seconds", 1000000}, {"sec", 1000000},
	{"secs", 1000000}, {"s", 1000000},
	{"minute", INT64_C(60000000)}, {"minutes", INT64_C(60000000)},
	{"min", INT64_C(60000000)}, {"mins", INT64_C(60000000)},
	{"m", INT64_C(60000000)},
	{"hour", INT64_C(3600000000)}, {"hours", INT64_C(3600000000)},
	{"hr", INT64_C(3600000000)}, {"hrs", INT64_C(3600000000)},
	{"h", INT64_C(3600000000)},
	{"day", INT64_C(86400000000)}, {"days", INT64_C(86400000000)},
	{"d", INT64_C(86400000000)},
	{"week", INT64_C(604800000000)}, {"weeks", INT64_C(604800000000)},
	{"w", INT64_C(604800000000)}
};

/* Units that PostgreSQL knows but that have no fixed length */
static const char *const md_variable_units[] = {
	"month", "months", "mon", "mons", "mo",
	"year", "years", "yr", "yrs", "y"
};

/*
 * Parse "<number><optional spaces><unit>" pairs separated by whitespace.
 * The number is digits with an optional fraction; the fraction is
 * multiplied out digit by digit, exactly, and rounded half up to the
 * microsecond.
 */
bool
md_parse_interval(const char *text, int64_t *us, char *errbuf, size_t errlen)
{
	const char *p;
	uint64_t	total = 0;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (text == NULL)
		text = "";
	p = text;
	while (md_isspace(*p))
		p++;
	if (*p == '\0')
		return md_fail_buf(errbuf, errlen,
						   "\"%s\" is not an interval; expected a number and a unit, e.g. \"30 minutes\"",
						   text);

	while (*p != '\0')
	{
		const char *number = p;
		const char *frac = NULL;
		const char *unit;
		size_t		fraclen = 0;
		size_t		unitlen;
		size_t		numberlen;
		uint64_t	whole = 0;
		uint64_t	unit_us = 0;
		uint64_t	part;
		uint64_t	carry;
		unsigned	digit = 0;
		size_t		i;
		bool		overflow = false;

		if (*p == '-')
			return md_fail_buf(errbuf, errlen,
							   "interval \"%s\" must be positive", text);
		if (!md_isdigit(*p))
			return md_fail_buf(errbuf, errlen,
							   "\"%s\" is not an interval; expected a number and a unit, e.g. \"30 minutes\"",
							   text);
		for (; md_isdigit(*p); p++)
		{
			unsigned	d = (unsigned) (*p - '0');

			if (whole > (UINT64_C(0x7FFFFFFFFFFFFFFF) - d) / 10)
				overflow = true;
			else
				whole = whole * 10 + d;
		}
		if (*p == '.')
		{
			p++;
			frac = p;
			while (md_isdigit(*p))
				p++;
			fraclen = (size_t) (p - frac);
			if (fraclen == 0)
				return md_fail_buf(errbuf, errlen,
								   "\"%s\" is not an interval; expected a number and a unit, e.g. \"30 minutes\"",
								   text);
		}
		numberlen = (size_t) (p - number);
		while (md_isspace(*p))
			p++;

		unit = p;
		while (*p != '\0' && !md_isspace(*p))
			p++;
		unitlen = (size_t) (p - unit);
		if (unitlen == 0)
			return md_fail_buf(errbuf, errlen,
							   "\"%.*s\" has no unit of time; " MD_UNITS_HINT,
							   numberlen > INT_MAX ? INT_MAX : (int) numberlen,
							   number);
		for (i = 0; i < sizeof(md_units) / sizeof(md_units[0]); i++)
		{
			if (md_word_ieq(unit, unitlen, md_units[i].name))
			{
				unit_us = (uint64_t) md_units[i].us;
				break;
			}
		}
		if (unit_us == 0)
		{
			for (i = 0; i < sizeof(md_variable_units) / sizeof(md_variable_units[0]); i++)
			{
				if (md_word_ieq(unit, unitlen, md_variable_units[i]))
					return md_fail_buf(errbuf, errlen,
									   "months and years have no fixed length; use days, e.g. \"30 days\"");
			}
			return md_fail_buf(errbuf, errlen,
							   "\"%.*s\" is not a unit of time; " MD_UNITS_HINT,
							   unitlen > INT_MAX ? INT_MAX : (int) unitlen,
							   unit);
		}

		/* whole * unit, then the fraction, then the running total */
		if (overflow || whole > (uint64_t) INT64_MAX / unit_us)
			return md_fail_buf(errbuf, errlen,
							   "interval \"%s\" is out of range", text);
		part = whole * unit_us;
		carry = 0;
		for (i = fraclen; i > 0; i--)
		{
			uint64_t	t = (uint64_t) (frac[i - 1] - '0') * unit_us + carry;

			carry = t / 10;
			digit = (unsigned) (t % 10);
		}
		if (fraclen > 0)
			carry += digit >= 5 ? 1 : 0;
		if (part > (uint64_t) INT64_MAX - carry)
			return md_fail_buf(errbuf, errlen,
							   "interval \"%s\" is out of range", text);
		part += carry;
		if (total > (uint64_t) INT64_MAX - part)
			return md_fail_buf(errbuf, errlen,
							   "interval \"%s\" is out of range", text);
		total += part;

		while (md_isspace(*p))
			p++;
	}

	if (total == 0)
		return md_fail_buf(errbuf, errlen,
						   "interval \"%s\" must be positive", text);
	if (total > (uint64_t) MD_MAX_INTERVAL_US)
		return md_fail_buf(errbuf, errlen,
						   "interval \"%s\" is longer than 100 years (" MD_MAX_INTERVAL_TEXT ")",
						   text);
	*us = (int64_t) total;
	return true;
}

/* ----------------------------------------------------------------
 * Snapshot schedules
 * ----------------------------------------------------------------
 */

/*
 * A decimal count without sign or fraction, maybe followed by whitespace.
 * Returns 0 when fine, 1 when malformed, 2 when out of range.
 */
static int
md_parse_count(const char *p, int64_t *n)
{
	uint64_t	value = 0;
	bool		overflow = false;

	if (!md_isdigit(*p))
		return 1;
	for (; md_isdigit(*p); p++)
	{
		unsigned	d = (unsigned) (*p - '0');

		if (value > ((uint64_t) INT64_MAX - d) / 10)
			overflow = true;
		else
			value = value * 10 + d;
	}
	while (md_isspace(*p))
		p++;
	if (*p != '\0')
		return 1;
	if (overflow)
		return 2;
	*n = (int64_t) value;
	return 0;
}

/*
 * The text of "snapshotSchedule": forever, never, recurs N, every N or
 * spaced INTERVAL.  The keywords are case-sensitive, unlike the units of an
 * interval.
 * "recurs 0" takes no automatic snapshot at all, as recurs(0) does in
 * effect libraries; "every 0" would divide by zero and is refused.
 */
bool
md_compile_schedule_text(MdCompiler *c, const MdPath *at, const char *text,
						 size_t len, MdPersistence *ps)
{
	const char *p;
	const char *word;
	size_t		wordlen;

	p = text;
	while (md_isspace(*p))
		p++;
	word = p;
	while (*p != '\0' && !md_isspace(*p))
		p++;
	wordlen = (size_t) (p - word);
	while (md_isspace(*p))
		p++;

	if (md_word_eq(word, wordlen, "forever") && *p == '\0')
		ps->schedule = MD_SNAPSHOT_FOREVER;
	else if (md_word_eq(word, wordlen, "never") && *p == '\0')
		ps->schedule = MD_SNAPSHOT_NEVER;
	else if (md_word_eq(word, wordlen, "recurs") ||
			 md_word_eq(word, wordlen, "every"))
	{
		bool		recurs = word[0] == 'r';
		int			rc = md_parse_count(p, &ps->n);

		if (rc == 1 && recurs)
			return md_fail(c, at,
						   "\"%s\" is not a schedule; N must be an integer, 0 or more",
						   text);
		if (rc == 1 || (rc == 0 && ps->n == 0 && !recurs))
			return md_fail(c, at,
						   "\"%s\" is not a schedule; N must be a positive integer",
						   text);
		if (rc == 2)
			return md_fail(c, at,
						   "\"%s\" is not a schedule; N is out of range",
						   text);
		ps->schedule = recurs ? MD_SNAPSHOT_RECURS : MD_SNAPSHOT_EVERY;
	}
	else if (md_word_eq(word, wordlen, "spaced"))
	{
		char		msg[512];

		if (*p == '\0')
			return md_fail(c, at,
						   "\"%s\" is not a schedule; expected spaced INTERVAL, e.g. \"spaced 5 minutes\"",
						   text);
		if (!md_parse_interval(p, &ps->spaced_us, msg, sizeof(msg)))
			return md_fail(c, at, "%s", msg);
		ps->schedule = MD_SNAPSHOT_SPACED;
		c->def->needs_worker = true;
	}
	else
		return md_fail(c, at,
					   "\"%s\" is not a schedule; expected forever, never, recurs N, every N or spaced INTERVAL",
					   text);

	ps->schedule_text = md_strndup(c, text, len);
	return ps->schedule_text != NULL;
}
