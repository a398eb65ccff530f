/*-------------------------------------------------------------------------
 *
 * definition_fuzz.c
 *	  A libFuzzer harness for the definition compiler (src/definition*.c):
 *	  hostile definitions must be compiled or refused, never crash, leak or
 *	  yield a definition that breaks the invariants of definition.h.
 *
 * Every input is given twice:
 *
 * 1. to md_compile(), as exactly its bytes (libFuzzer's buffer is no longer
 *	  than the input, so a read past the end trips AddressSanitizer).  A
 *	  refused text must come with a "<path>: <problem>" message that is
 *	  valid UTF-8, and the same message cut to a smaller buffer must be a
 *	  prefix of it.  A compiled definition must keep its invariants (sorted
 *	  names, indexes in range, distinct functions, resolvable timers), and
 *	  every lookup is tried: md_find_state() for every state, md_state_rule()
 *	  for every state and every event tag the definition mentions,
 *	  md_find_event_schema() for every tag;
 *
 * 2. to md_parse_interval(), as a C string (cut at the first NUL byte):
 *	  a result must be positive, a refusal must come with a message.
 *
 * No mode byte: the seed corpus holds both definitions and intervals as
 * plain text, and the fuzzer grows both kinds.  A definition costs the
 * interval parser a copy and a look at its first bytes; an interval costs
 * the compiler one tokener error.
 *
 * Any violation is reported on stderr and abort()s, which libFuzzer records
 * as a crash with the input that caused it.
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "definition.h"

#define ERRLEN 1024

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond) \
	do { \
		if (!(cond)) \
			violation(__LINE__, #cond); \
	} while (0)

static void
violation(int line, const char *what)
{
	fprintf(stderr, "definition_fuzz.c:%d: invariant violated: %s\n",
			line, what);
	abort();
}

/* Whether s is well-formed UTF-8: no stray or missing continuation bytes */
static bool
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p != '\0')
	{
		size_t		need;
		size_t		i;

		if (*p < 0x80)
			need = 0;
		else if ((*p & 0xE0) == 0xC0)
			need = 1;
		else if ((*p & 0xF0) == 0xE0)
			need = 2;
		else if ((*p & 0xF8) == 0xF0)
			need = 3;
		else
			return false;
		p++;
		for (i = 0; i < need; i++, p++)
		{
			if ((*p & 0xC0) != 0x80)
				return false;
		}
	}
	return true;
}

/* A state, event or field name as definition.h promises it */
static void
check_name(const char *name, bool allow_dollar)
{
	REQUIRE(name != NULL);
	REQUIRE(name[0] != '\0');
	REQUIRE(strlen(name) <= MD_MAX_NAME_LEN);
	REQUIRE(allow_dollar || name[0] != '$');
	REQUIRE(valid_utf8(name));
}

static void
check_function_ref(const MachineDef *def, int index, MdFunctionKind kind)
{
	REQUIRE(index >= 0 && index < def->nfunctions);
	REQUIRE(def->functions[index].kind == kind);
}

static void
check_rules(const MachineDef *def, const MdRule *rules, int nrules)
{
	int			i;
	int			j;

	REQUIRE(nrules >= 0);
	REQUIRE(nrules == 0 || rules != NULL);
	for (i = 0; i < nrules; i++)
	{
		const MdRule *r = &rules[i];

		check_name(r->event, false);
		REQUIRE(i == 0 || strcmp(rules[i - 1].event, r->event) < 0);
		REQUIRE(md_find_rule(rules, nrules, r->event) == r);
		REQUIRE(r->ntransitions >= 1 && r->transitions != NULL);
		for (j = 0; j < r->ntransitions; j++)
		{
			const MdTransition *t = &r->transitions[j];

			REQUIRE(t->target >= -1 && t->target < def->nstates);
			if (t->guard != -1)
				check_function_ref(def, t->guard, MD_FN_GUARD);
			if (t->handler != -1)
				check_function_ref(def, t->handler, MD_FN_HANDLER);
			REQUIRE(t->target >= 0 || t->handler >= 0);
			REQUIRE(!(t->merge && t->handler >= 0));
		}
	}
}

/* A timer's event: a JSON object whose "_tag" is the timer's event_tag */
static void
check_timer_event(const MdTimer *tm)
{
	json_object *obj;
	json_object *tag;
	json_tokener *tok;

	REQUIRE(tm->event != NULL && tm->event_tag != NULL);
	check_name(tm->event_tag, false);
	/* deeper than the compiler's limit: the event was nested inside */
	tok = json_tokener_new_ex(128);
	REQUIRE(tok != NULL);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, tm->event, (int) strlen(tm->event));
	REQUIRE(json_tokener_get_error(tok) == json_tokener_success);
	json_tokener_free(tok);
	REQUIRE(obj != NULL);
	REQUIRE(json_object_is_type(obj, json_type_object));
	REQUIRE(json_object_object_get_ex(obj, "_tag", &tag));
	REQUIRE(json_object_is_type(tag, json_type_string));
	REQUIRE(strcmp(json_object_get_string(tag), tm->event_tag) == 0);
	json_object_put(obj);
}

static int
cmp_function(const void *a, const void *b)
{
	const MdFunction *fa = *(const MdFunction *const *) a;
	const MdFunction *fb = *(const MdFunction *const *) b;
	int			cmp = strcmp(fa->name, fb->name);

	if (cmp != 0)
		return cmp;
	return (int) fa->kind - (int) fb->kind;
}

/* Functions: named, placed, and distinct (name, kind) pairs */
static void
check_functions(const MachineDef *def)
{
	const MdFunction **sorted;
	int			i;

	REQUIRE(def->nfunctions >= 0);
	REQUIRE(def->nfunctions == 0 || def->functions != NULL);
	for (i = 0; i < def->nfunctions; i++)
	{
		const MdFunction *fn = &def->functions[i];

		REQUIRE(fn->name != NULL && fn->name[0] != '\0');
		REQUIRE(strlen(fn->name) <= 2 * MD_MAX_NAME_LEN + 1);
		REQUIRE(fn->path != NULL && fn->path[0] != '\0');
		REQUIRE(fn->kind == MD_FN_GUARD || fn->kind == MD_FN_HANDLER ||
				fn->kind == MD_FN_EFFECT || fn->kind == MD_FN_ENTITY_INIT ||
				fn->kind == MD_FN_MIGRATE || fn->kind == MD_FN_UPCAST);
	}
	if (def->nfunctions < 2)
		return;
	sorted = malloc(sizeof(*sorted) * (size_t) def->nfunctions);
	REQUIRE(sorted != NULL);
	for (i = 0; i < def->nfunctions; i++)
		sorted[i] = &def->functions[i];
	qsort(sorted, (size_t) def->nfunctions, sizeof(*sorted), cmp_function);
	for (i = 1; i < def->nfunctions; i++)
		REQUIRE(cmp_function(&sorted[i - 1], &sorted[i]) != 0);
	free(sorted);
}

/* The rule md_state_rule() must find: the state's own, else an "any" one */
static const MdRule *
expected_rule(const MachineDef *def, int state, const char *event)
{
	const MdState *st = &def->states[state];
	const MdRule *rule;

	if (st->final)
		return NULL;
	/* a postponed event takes no rule, not even "any" (a linear search) */
	for (int i = 0; i < st->npostpone; i++)
		if (strcmp(st->postpone[i], event) == 0)
			return NULL;
	rule = md_find_rule(st->rules, st->nrules, event);
	if (rule != NULL)
		return rule;
	return md_find_rule(def->any, def->nany, event);
}

/* Every lookup with one event tag, from every state */
static void
check_lookups_for(const MachineDef *def, const char *event)
{
	const MdEventSchema *schema;
	int			state;
	int			s;

	for (s = 0; s < def->nstates; s++)
	{
		const MdRule *rule = md_state_rule(def, s, event);

		REQUIRE(rule == expected_rule(def, s, event));
		REQUIRE(rule == NULL || strcmp(rule->event, event) == 0);
	}
	REQUIRE(md_state_rule(def, -1, event) == NULL);
	REQUIRE(md_state_rule(def, def->nstates, event) == NULL);

	schema = md_find_event_schema(def, event);
	REQUIRE(schema == NULL ||
			(schema >= def->events && schema < def->events + def->nevents &&
			 strcmp(schema->event, event) == 0));

	/* an event tag may also be a state name, or not */
	state = md_find_state(def, event);
	REQUIRE(state == -1 ||
			(state >= 0 && state < def->nstates &&
			 strcmp(def->states[state].name, event) == 0));
}

static void
check_definition(const MachineDef *def)
{
	const MdPersistence *ps = &def->persistence;
	bool		timers = false;
	bool		postpones = false;
	int			i;
	int			j;

	REQUIRE(def->arena != NULL);
	REQUIRE(def->nstates >= 1 && def->states != NULL);
	REQUIRE(def->initial >= 0 && def->initial < def->nstates);
	REQUIRE(def->nany >= 0 && def->nevents >= 0);
	check_functions(def);

	for (i = 0; i < def->nstates; i++)
	{
		const MdState *st = &def->states[i];

		check_name(st->name, false);
		REQUIRE(i == 0 || strcmp(def->states[i - 1].name, st->name) < 0);
		REQUIRE(md_find_state(def, st->name) == i);
		check_rules(def, st->rules, st->nrules);
		REQUIRE(st->nentry >= 0 && st->nexit >= 0 && st->ntimers >= 0);
		for (j = 0; j < st->nentry; j++)
			check_function_ref(def, st->entry[j], MD_FN_EFFECT);
		for (j = 0; j < st->nexit; j++)
			check_function_ref(def, st->exit[j], MD_FN_EFFECT);
		for (j = 0; j < st->ntimers; j++)
		{
			const MdTimer *tm = &st->timers[j];

			REQUIRE(tm->delay_us > 0 && tm->delay_us <= MD_MAX_INTERVAL_US && tm->delay != NULL);
			check_timer_event(tm);
			REQUIRE(md_state_rule(def, i, tm->event_tag) != NULL);
			timers = true;
		}
		REQUIRE(st->npostpone >= 0);
		for (j = 0; j < st->npostpone; j++)
		{
			check_name(st->postpone[j], false);
			REQUIRE(j == 0 || strcmp(st->postpone[j - 1], st->postpone[j]) < 0);
			REQUIRE(md_state_postpones(def, i, st->postpone[j]));
			REQUIRE(md_find_rule(st->rules, st->nrules, st->postpone[j]) == NULL);
			REQUIRE(md_state_rule(def, i, st->postpone[j]) == NULL);
			postpones = true;
		}
		if (st->final)
			REQUIRE(st->nrules == 0 && st->ntimers == 0 && st->nexit == 0 &&
					st->npostpone == 0);
	}
	REQUIRE(def->postpones == postpones);
	check_rules(def, def->any, def->nany);

	for (i = 0; i < def->nevents; i++)
	{
		const MdEventSchema *es = &def->events[i];

		check_name(es->event, false);
		REQUIRE(i == 0 || strcmp(def->events[i - 1].event, es->event) < 0);
		REQUIRE(md_find_event_schema(def, es->event) == es);
		REQUIRE(es->nfields >= 0 && (es->nfields == 0 || es->fields != NULL));
		for (j = 0; j < es->nfields; j++)
		{
			const MdField *f = &es->fields[j];

			check_name(f->name, true);
			REQUIRE(strcmp(f->name, "_tag") != 0);
			REQUIRE(j == 0 || strcmp(es->fields[j - 1].name, f->name) < 0);
			REQUIRE(f->type >= MD_FIELD_STRING && f->type <= MD_FIELD_ANY);
		}
	}

	if (def->notify != NULL)
		check_name(def->notify, true);
	REQUIRE(def->entity || def->entity_init == -1);
	if (def->entity_init != -1)
		check_function_ref(def, def->entity_init, MD_FN_ENTITY_INIT);
	if (def->migrate != -1)
		check_function_ref(def, def->migrate, MD_FN_MIGRATE);
	if (def->upcast != -1)
		check_function_ref(def, def->upcast, MD_FN_UPCAST);
	REQUIRE(def->needs_worker == (timers || ps->schedule == MD_SNAPSHOT_SPACED));
	if (!ps->enabled)
		REQUIRE(ps->schedule == MD_SNAPSHOT_NEVER && ps->schedule_text == NULL &&
				ps->journal_events && ps->machine_type == NULL &&
				ps->adapter == NULL);
	if (ps->schedule != MD_SNAPSHOT_NEVER)
		REQUIRE(ps->schedule_text != NULL);
	if (ps->schedule == MD_SNAPSHOT_RECURS)
		REQUIRE(ps->n >= 0);
	if (ps->schedule == MD_SNAPSHOT_EVERY)
		REQUIRE(ps->n >= 1);
	if (ps->schedule == MD_SNAPSHOT_SPACED)
		REQUIRE(ps->spaced_us > 0 && ps->spaced_us <= MD_MAX_INTERVAL_US);
	if (ps->machine_type != NULL)
		check_name(ps->machine_type, true);
	if (ps->adapter != NULL)
		REQUIRE(ps->adapter[0] != '\0');

	/* the lookups, with every event tag and name the definition holds */
	for (i = 0; i < def->nstates; i++)
	{
		const MdState *st = &def->states[i];

		check_lookups_for(def, st->name);
		for (j = 0; j < st->nrules; j++)
			check_lookups_for(def, st->rules[j].event);
	}
	for (i = 0; i < def->nany; i++)
		check_lookups_for(def, def->any[i].event);
	for (i = 0; i < def->nevents; i++)
		check_lookups_for(def, def->events[i].event);
	REQUIRE(md_find_state(def, "") == -1);
	REQUIRE(md_find_state(def, NULL) == -1);
	REQUIRE(md_find_event_schema(def, NULL) == NULL);
	REQUIRE(md_state_rule(def, def->initial, NULL) == NULL);
}

/* A refusal: a message, and the same message cut short in a small buffer */
static void
check_refusal(const uint8_t *data, size_t size, const char *err)
{
	char		small[64];
	size_t		smalllen;
	size_t		cut;
	MachineDef *def;

	REQUIRE(err[0] != '\0');
	REQUIRE(strlen(err) < ERRLEN);
	/* a path longer than the buffer leaves no room for the problem */
	REQUIRE(strstr(err, ": ") != NULL || strlen(err) >= ERRLEN - 4);
	REQUIRE(valid_utf8(err));

	/* a size from 1 to 64 that depends on the input */
	cut = 1 + (size > 0 ? (size_t) data[size / 2] : 0) % sizeof(small);
	memset(small, 'X', sizeof(small));
	def = md_compile((const char *) data, size, small, cut);
	REQUIRE(def == NULL);
	smalllen = strlen(small);
	REQUIRE(smalllen < cut);
	REQUIRE(cut == sizeof(small) || small[cut] == 'X');
	if (strlen(err) < cut)
		REQUIRE(strcmp(small, err) == 0);
	else if (strncmp(small, err, smalllen) != 0)
	{
		/* elided: the beginning and the end of the whole around "..." */
		bool		split = false;

		for (const char *dots = strstr(small, "..."); dots != NULL && !split;
			 dots = strstr(dots + 1, "..."))
		{
			size_t		head = (size_t) (dots - small);
			size_t		tail = smalllen - head - 3;

			split = strncmp(small, err, head) == 0 &&
				strcmp(small + head + 3, err + strlen(err) - tail) == 0;
		}
		REQUIRE(split);
	}
	/* at most a split in two and incomplete UTF-8 sequences were dropped */
	REQUIRE(smalllen + 8 >= (strlen(err) < cut - 1 ? strlen(err) : cut - 1));
	REQUIRE(valid_utf8(small));
}

static void
fuzz_interval(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	char		err[ERRLEN];
	int64_t		us = 0;

	REQUIRE(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	memset(err, 'X', sizeof(err));
	if (md_parse_interval(text, &us, err, sizeof(err)))
		REQUIRE(us > 0 && us <= MD_MAX_INTERVAL_US && err[0] == '\0');
	else
		REQUIRE(err[0] != '\0' && strlen(err) < sizeof(err));
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		err[ERRLEN];
	MachineDef *def;

	memset(err, 'X', sizeof(err));
	def = md_compile((const char *) data, size, err, sizeof(err));
	if (def != NULL)
	{
		REQUIRE(err[0] == '\0');
		check_definition(def);
		md_free(def);
	}
	else
		check_refusal(data, size, err);

	fuzz_interval(data, size);
	return 0;
}
