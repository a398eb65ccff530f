/*-------------------------------------------------------------------------
 *
 * definition_test.c
 *	  Unit tests for src/definition*.c, the definition compiler.
 *
 * A standalone program, linked with the compiler (built with MD_TEST_ALLOC
 * so that the allocations of definition_arena.c can be made to fail) and
 * json-c, and run under AddressSanitizer and UndefinedBehaviorSanitizer by
 * "make check".
 *
 * The cases are tables: valid definitions are compiled and their compiled
 * form is checked, both against the invariants every definition keeps
 * (sorted, resolved, in range) and field by field; invalid definitions must
 * fail with exactly the expected message.  Then md_parse_interval() on its
 * own, and generated, hostile and fault-injection cases.
 *
 * To keep the tables readable, JSON texts are written with single quotes,
 * turned into double quotes before compiling (so a test cannot contain a
 * single quote of its own).  Every text is handed over in a buffer of its
 * exact length, without a terminator, so that a read past the end trips
 * AddressSanitizer.
 *
 * Output is TAP: "ok N - description" or "not ok N - description" (with a
 * "# why" line), then "1..N".  The exit status is 1 when any case failed.
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "definition.h"

/* ----------------------------------------------------------------
 * Allocation hooks (definition_arena.c is compiled with MD_TEST_ALLOC)
 * ----------------------------------------------------------------
 */

void	   *md_test_malloc(size_t size);
void		md_test_free(void *ptr);

static long fail_countdown = -1;	/* the allocation to fail; -1: none */
static long live_allocations = 0;
static long total_allocations = 0;

void *
md_test_malloc(size_t size)
{
	void	   *p;

	if (fail_countdown == 0)
	{
		fail_countdown = -1;	/* fail once */
		return NULL;
	}
	if (fail_countdown > 0)
		fail_countdown--;
	p = malloc(size);
	if (p != NULL)
	{
		live_allocations++;
		total_allocations++;
	}
	return p;
}

void
md_test_free(void *ptr)
{
	if (ptr != NULL)
	{
		live_allocations--;
		free(ptr);
	}
}

/* ----------------------------------------------------------------
 * TAP output and helpers
 * ----------------------------------------------------------------
 */

static int	ntests = 0;
static int	nfailed = 0;

static void
report(bool ok, const char *description, const char *why)
{
	ntests++;
	printf("%s %d - %s\n", ok ? "ok" : "not ok", ntests, description);
	if (!ok)
	{
		nfailed++;
		if (why != NULL && why[0] != '\0')
			printf("# %s\n", why);
	}
}

#define CHECK(cond) \
	do { \
		if (!(cond)) \
		{ \
			snprintf(why, whylen, "line %d: %s", __LINE__, #cond); \
			return false; \
		} \
	} while (0)

#define CHECK_STR(a, b) \
	do { \
		const char *a_ = (a); \
		const char *b_ = (b); \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) \
		{ \
			snprintf(why, whylen, "line %d: %s is \"%s\", expected \"%s\"", \
					 __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
			return false; \
		} \
	} while (0)

static void *
xmalloc(size_t size)
{
	void	   *p = malloc(size > 0 ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

/* A copy of a test text with single quotes turned into double quotes */
static char *
dq(const char *text)
{
	size_t		len = strlen(text);
	char	   *copy = xmalloc(len + 1);
	size_t		i;

	for (i = 0; i <= len; i++)
		copy[i] = text[i] == '\'' ? '"' : text[i];
	return copy;
}

/* Compile len bytes from a buffer of exactly that size: no terminator */
static MachineDef *
compile_exact(const char *text, size_t len, char *err, size_t errlen)
{
	char	   *copy = xmalloc(len);
	MachineDef *def;

	if (len > 0)
		memcpy(copy, text, len);
	def = md_compile(copy, len, err, errlen);
	free(copy);
	return def;
}

/* A growing string for generated definitions */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

static void
buf_add(Buf *b, const char *s)
{
	size_t		n = strlen(s);

	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap > 0 ? b->cap : 1024;
		char	   *data;

		while (b->len + n + 1 > cap)
			cap *= 2;
		data = realloc(b->data, cap);
		if (data == NULL)
		{
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n + 1);
	b->len += n;
}

static void
buf_addf(Buf *b, const char *fmt, int n)
{
	char		tmp[256];

	snprintf(tmp, sizeof(tmp), fmt, n, n, n);
	buf_add(b, tmp);
}

static const MdState *
find_state(const MachineDef *def, const char *name)
{
	int			i = md_find_state(def, name);

	return i >= 0 ? &def->states[i] : NULL;
}

static const MdRule *
find_rule(const MdState *st, const char *event)
{
	return st != NULL ? md_find_rule(st->rules, st->nrules, event) : NULL;
}

/* ----------------------------------------------------------------
 * Invariants of every compiled definition
 * ----------------------------------------------------------------
 */

static bool
check_function_ref(const MachineDef *def, int index, MdFunctionKind kind)
{
	return index >= 0 && index < def->nfunctions &&
		def->functions[index].kind == kind;
}

static bool
check_rules(const MachineDef *def, const MdRule *rules, int nrules,
			char *why, size_t whylen)
{
	int			i;
	int			j;

	CHECK(nrules == 0 || rules != NULL);
	for (i = 0; i < nrules; i++)
	{
		const MdRule *r = &rules[i];

		CHECK(r->event != NULL && r->event[0] != '\0' && r->event[0] != '$');
		CHECK(i == 0 || strcmp(rules[i - 1].event, r->event) < 0);
		CHECK(md_find_rule(rules, nrules, r->event) == r);
		CHECK(r->ntransitions >= 1 && r->transitions != NULL);
		for (j = 0; j < r->ntransitions; j++)
		{
			const MdTransition *t = &r->transitions[j];

			CHECK(t->target >= -1 && t->target < def->nstates);
			CHECK(t->guard == -1 || check_function_ref(def, t->guard, MD_FN_GUARD));
			CHECK(t->handler == -1 ||
				  check_function_ref(def, t->handler, MD_FN_HANDLER));
			CHECK(t->target >= 0 || t->handler >= 0);
			CHECK(!(t->merge && t->handler >= 0));
		}
	}
	return true;
}

static bool
check_invariants(const MachineDef *def, char *why, size_t whylen)
{
	bool		timers = false;
	int			i;
	int			j;

	CHECK(def->arena != NULL);
	CHECK(def->nstates >= 1 && def->states != NULL);
	CHECK(def->initial >= 0 && def->initial < def->nstates);
	for (i = 0; i < def->nstates; i++)
	{
		const MdState *st = &def->states[i];

		CHECK(st->name != NULL && st->name[0] != '\0' && st->name[0] != '$');
		CHECK(strlen(st->name) <= MD_MAX_NAME_LEN);
		CHECK(i == 0 || strcmp(def->states[i - 1].name, st->name) < 0);
		CHECK(md_find_state(def, st->name) == i);
		if (!check_rules(def, st->rules, st->nrules, why, whylen))
			return false;
		for (j = 0; j < st->nentry; j++)
			CHECK(check_function_ref(def, st->entry[j], MD_FN_EFFECT));
		for (j = 0; j < st->nexit; j++)
			CHECK(check_function_ref(def, st->exit[j], MD_FN_EFFECT));
		for (j = 0; j < st->ntimers; j++)
		{
			const MdTimer *tm = &st->timers[j];

			CHECK(tm->delay_us > 0 && tm->delay != NULL);
			CHECK(tm->event != NULL && tm->event_tag != NULL);
			CHECK(md_state_rule(def, i, tm->event_tag) != NULL);
			timers = true;
		}
		if (st->final)
			CHECK(st->nrules == 0 && st->ntimers == 0 && st->nexit == 0);
	}
	if (!check_rules(def, def->any, def->nany, why, whylen))
		return false;
	for (i = 0; i < def->nevents; i++)
	{
		const MdEventSchema *es = &def->events[i];

		CHECK(i == 0 || strcmp(def->events[i - 1].event, es->event) < 0);
		CHECK(md_find_event_schema(def, es->event) == es);
		for (j = 1; j < es->nfields; j++)
			CHECK(strcmp(es->fields[j - 1].name, es->fields[j].name) < 0);
	}
	for (i = 0; i < def->nfunctions; i++)
	{
		CHECK(def->functions[i].name != NULL && def->functions[i].path != NULL);
		if (def->nfunctions <= 2000)
		{
			for (j = 0; j < i; j++)
				CHECK(def->functions[j].kind != def->functions[i].kind ||
					  strcmp(def->functions[j].name, def->functions[i].name) != 0);
		}
	}
	CHECK(def->needs_worker ==
		  (timers || def->persistence.schedule == MD_SNAPSHOT_SPACED));
	if (!def->persistence.enabled)
		CHECK(def->persistence.schedule == MD_SNAPSHOT_NEVER &&
			  def->persistence.schedule_text == NULL &&
			  def->persistence.journal_events);
	CHECK(def->entity || def->entity_init == -1);
	CHECK(def->entity_init == -1 ||
		  check_function_ref(def, def->entity_init, MD_FN_ENTITY_INIT));
	CHECK(def->migrate == -1 ||
		  check_function_ref(def, def->migrate, MD_FN_MIGRATE));
	CHECK(def->upcast == -1 ||
		  check_function_ref(def, def->upcast, MD_FN_UPCAST));
	return true;
}

/* ----------------------------------------------------------------
 * Valid definitions
 * ----------------------------------------------------------------
 */

#define ORDER_EXAMPLE \
	"{" \
	" 'initial': 'Pending'," \
	" 'states': {" \
	"  'Pending': {" \
	"   'on': {" \
	"    'Pay': [{'target': 'Paid', 'guard': 'shop.can_pay', 'handler': 'shop.apply_payment'}," \
	"            {'target': 'Rejected'}]," \
	"    'Cancel': 'Cancelled'," \
	"    'Expire': 'Cancelled'," \
	"    'Touch': {'target': 'Pending', 'reenter': true}," \
	"    'Note': {'target': 'Pending', 'merge': true}" \
	"   }," \
	"   'entry': ['shop.on_pending']," \
	"   'exit': []," \
	"   'after': [{'delay': '30 minutes', 'event': {'_tag': 'Expire'}}]" \
	"  }," \
	"  'Paid': {'on': {'Ship': 'Shipped'}}," \
	"  'Shipped': {'final': true}," \
	"  'Cancelled': {'final': true}," \
	"  'Rejected': {'final': true}" \
	" }," \
	" 'any': {'Cancel': 'Cancelled'}," \
	" 'events': {'Pay': {'amount': 'number'}, 'Note': {'text': 'string'}}," \
	" 'unhandled': 'error'," \
	" 'notify': 'orders'," \
	" 'persistence': {'snapshotSchedule': 'forever', 'journalEvents': true, 'machineType': 'Order'}" \
	"}"

#define X16 "xxxxxxxxxxxxxxxx"
#define X63 X16 X16 X16 "xxxxxxxxxxxxxxx"
#define X64 X16 X16 X16 X16
#define X127 X64 X63
#define X128 X64 X64

static bool
check_spec_example(const MachineDef *def, char *why, size_t whylen)
{
	const MdState *pending = find_state(def, "Pending");
	const MdState *paid = find_state(def, "Paid");
	const MdRule *r;
	const MdTimer *tm;

	CHECK(def->nstates == 5);
	CHECK_STR(def->states[0].name, "Cancelled");
	CHECK_STR(def->states[1].name, "Paid");
	CHECK_STR(def->states[2].name, "Pending");
	CHECK_STR(def->states[3].name, "Rejected");
	CHECK_STR(def->states[4].name, "Shipped");
	CHECK(def->initial == 2);
	CHECK(pending != NULL && paid != NULL);

	CHECK(pending->nrules == 5);
	CHECK_STR(pending->rules[0].event, "Cancel");
	CHECK_STR(pending->rules[1].event, "Expire");
	CHECK_STR(pending->rules[2].event, "Note");
	CHECK_STR(pending->rules[3].event, "Pay");
	CHECK_STR(pending->rules[4].event, "Touch");

	r = find_rule(pending, "Pay");
	CHECK(r != NULL && r->ntransitions == 2);
	CHECK(r->transitions[0].target == 1);
	CHECK(r->transitions[0].guard == 0 && r->transitions[0].handler == 1);
	CHECK(!r->transitions[0].merge && !r->transitions[0].reenter);
	CHECK(r->transitions[1].target == 3);
	CHECK(r->transitions[1].guard == -1 && r->transitions[1].handler == -1);

	r = find_rule(pending, "Cancel");
	CHECK(r != NULL && r->ntransitions == 1 && r->transitions[0].target == 0);
	r = find_rule(pending, "Touch");
	CHECK(r != NULL && r->transitions[0].target == 2 &&
		  r->transitions[0].reenter && !r->transitions[0].merge);
	r = find_rule(pending, "Note");
	CHECK(r != NULL && r->transitions[0].target == 2 &&
		  r->transitions[0].merge && !r->transitions[0].reenter);

	CHECK(pending->nentry == 1 && pending->entry[0] == 2);
	CHECK(pending->nexit == 0);
	CHECK(pending->ntimers == 1);
	tm = &pending->timers[0];
	CHECK(tm->delay_us == INT64_C(1800000000));
	CHECK_STR(tm->delay, "30 minutes");
	CHECK_STR(tm->event, "{\"_tag\":\"Expire\"}");
	CHECK_STR(tm->event_tag, "Expire");
	CHECK(!pending->final);

	r = find_rule(paid, "Ship");
	CHECK(paid->nrules == 1 && r != NULL && r->transitions[0].target == 4);
	CHECK(def->states[0].final && def->states[3].final && def->states[4].final);
	CHECK(!paid->final);

	CHECK(def->nany == 1);
	CHECK_STR(def->any[0].event, "Cancel");
	CHECK(def->any[0].transitions[0].target == 0);

	CHECK(def->nevents == 2);
	CHECK_STR(def->events[0].event, "Note");
	CHECK(def->events[0].nfields == 1);
	CHECK_STR(def->events[0].fields[0].name, "text");
	CHECK(def->events[0].fields[0].type == MD_FIELD_STRING);
	CHECK(!def->events[0].fields[0].optional);
	CHECK_STR(def->events[1].event, "Pay");
	CHECK_STR(def->events[1].fields[0].name, "amount");
	CHECK(def->events[1].fields[0].type == MD_FIELD_NUMBER);

	CHECK(!def->unhandled_ignore);
	CHECK_STR(def->notify, "orders");
	CHECK(def->persistence.enabled);
	CHECK(def->persistence.journal_events);
	CHECK(def->persistence.schedule == MD_SNAPSHOT_FOREVER);
	CHECK_STR(def->persistence.schedule_text, "forever");
	CHECK_STR(def->persistence.machine_type, "Order");
	CHECK(def->persistence.adapter == NULL);

	CHECK(def->nfunctions == 3);
	CHECK_STR(def->functions[0].name, "shop.can_pay");
	CHECK(def->functions[0].kind == MD_FN_GUARD);
	CHECK_STR(def->functions[0].path, "states.Pending.on.Pay[0].guard");
	CHECK_STR(def->functions[1].name, "shop.apply_payment");
	CHECK(def->functions[1].kind == MD_FN_HANDLER);
	CHECK_STR(def->functions[1].path, "states.Pending.on.Pay[0].handler");
	CHECK_STR(def->functions[2].name, "shop.on_pending");
	CHECK(def->functions[2].kind == MD_FN_EFFECT);
	CHECK_STR(def->functions[2].path, "states.Pending.entry[0]");
	CHECK(def->needs_worker);
	return true;
}

static bool
check_spec_lookups(const MachineDef *def, char *why, size_t whylen)
{
	int			pending = md_find_state(def, "Pending");
	int			paid = md_find_state(def, "Paid");
	int			shipped = md_find_state(def, "Shipped");

	/* own rule first, then "any", final states accept nothing */
	CHECK(md_state_rule(def, pending, "Cancel") ==
		  find_rule(&def->states[pending], "Cancel"));
	CHECK(md_state_rule(def, paid, "Cancel") == &def->any[0]);
	CHECK(md_state_rule(def, shipped, "Cancel") == NULL);
	CHECK(md_state_rule(def, paid, "Pay") == NULL);
	CHECK(md_state_rule(def, -1, "Cancel") == NULL);
	CHECK(md_state_rule(def, def->nstates, "Cancel") == NULL);
	CHECK(md_find_state(def, "Nope") == -1);
	CHECK(md_find_state(def, "") == -1);
	CHECK(md_find_state(def, NULL) == -1);
	CHECK(md_find_state(NULL, "Paid") == -1);
	CHECK(md_find_event_schema(def, "Pay") == &def->events[1]);
	CHECK(md_find_event_schema(def, "Ship") == NULL);
	CHECK(md_find_event_schema(NULL, "Pay") == NULL);
	CHECK(md_find_rule(NULL, 0, "Pay") == NULL);
	CHECK(md_find_rule(def->any, def->nany, NULL) == NULL);
	return true;
}

static bool
check_minimal(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->nstates == 1 && def->initial == 0);
	CHECK_STR(def->states[0].name, "A");
	CHECK(def->states[0].nrules == 0 && def->states[0].nentry == 0);
	CHECK(def->states[0].nexit == 0 && def->states[0].ntimers == 0);
	CHECK(!def->states[0].final);
	CHECK(def->nany == 0 && def->nevents == 0 && def->nfunctions == 0);
	CHECK(!def->unhandled_ignore && def->notify == NULL);
	CHECK(!def->persistence.enabled && def->persistence.journal_events);
	CHECK(def->persistence.schedule == MD_SNAPSHOT_NEVER);
	CHECK(def->persistence.schedule_text == NULL);
	CHECK(def->persistence.machine_type == NULL);
	CHECK(def->persistence.adapter == NULL);
	CHECK(!def->needs_worker);
	CHECK(md_state_rule(def, 0, "Go") == NULL);
	return true;
}

static bool
check_ignore_notify(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->unhandled_ignore);
	CHECK_STR(def->notify, "chan_1");
	return true;
}

static bool
check_sorting(const MachineDef *def, char *why, size_t whylen)
{
	const MdState *m = find_state(def, "M");

	CHECK(def->nstates == 3);
	CHECK_STR(def->states[0].name, "A");
	CHECK_STR(def->states[1].name, "M");
	CHECK_STR(def->states[2].name, "Z");
	CHECK(def->initial == 1);
	CHECK(m != NULL && m->nrules == 3);
	CHECK_STR(m->rules[0].event, "a");
	CHECK_STR(m->rules[1].event, "b");
	CHECK_STR(m->rules[2].event, "c");
	CHECK(m->rules[0].transitions[0].target == 0);
	CHECK(m->rules[1].transitions[0].target == 1);
	CHECK(m->rules[2].transitions[0].target == 2);
	CHECK(def->nany == 3);
	CHECK_STR(def->any[0].event, "X");
	CHECK_STR(def->any[1].event, "Y");
	CHECK_STR(def->any[2].event, "y");
	CHECK(def->any[0].transitions[0].target == 2);
	return true;
}

static bool
check_string_candidates(const MachineDef *def, char *why, size_t whylen)
{
	const MdRule *r = find_rule(find_state(def, "A"), "Go");

	CHECK(r != NULL && r->ntransitions == 3);
	CHECK(r->transitions[0].target == 1 && r->transitions[1].target == 2);
	CHECK(r->transitions[2].target == 0 && r->transitions[2].guard == -1);
	CHECK(r->transitions[0].guard == -1 && r->transitions[0].handler == -1);
	return true;
}

static bool
check_handler_only(const MachineDef *def, char *why, size_t whylen)
{
	const MdRule *r = find_rule(find_state(def, "A"), "Go");

	CHECK(r != NULL && r->ntransitions == 1);
	CHECK(r->transitions[0].target == -1);
	CHECK(r->transitions[0].handler == 0);
	CHECK(def->nfunctions == 2);
	CHECK_STR(def->functions[0].name, "pick_state");
	CHECK(def->functions[0].kind == MD_FN_HANDLER);
	CHECK_STR(def->functions[0].path, "states.A.on.Go.handler");
	CHECK(def->nany == 1 && def->any[0].transitions[0].target == -1);
	CHECK(def->any[0].transitions[0].handler == 0);
	CHECK(def->any[0].transitions[0].guard == 1);
	CHECK_STR(def->functions[1].path, "any.Stop.guard");
	return true;
}

static bool
check_dedup(const MachineDef *def, char *why, size_t whylen)
{
	const MdState *a = find_state(def, "A");
	const MdState *b = find_state(def, "B");
	const MdRule *r = find_rule(a, "Go");

	/* g as guard, g as handler, e as effect, e as guard */
	CHECK(def->nfunctions == 4);
	CHECK_STR(def->functions[0].name, "g");
	CHECK(def->functions[0].kind == MD_FN_GUARD);
	CHECK_STR(def->functions[0].path, "states.A.on.Go[0].guard");
	CHECK_STR(def->functions[1].name, "g");
	CHECK(def->functions[1].kind == MD_FN_HANDLER);
	CHECK_STR(def->functions[1].path, "states.A.on.Go[0].handler");
	CHECK_STR(def->functions[2].name, "e");
	CHECK(def->functions[2].kind == MD_FN_EFFECT);
	CHECK_STR(def->functions[2].path, "states.A.entry[0]");
	CHECK_STR(def->functions[3].name, "e");
	CHECK(def->functions[3].kind == MD_FN_GUARD);
	CHECK_STR(def->functions[3].path, "states.B.on.Back.guard");
	CHECK(r != NULL && r->ntransitions == 2);
	CHECK(r->transitions[0].guard == 0 && r->transitions[0].handler == 1);
	CHECK(r->transitions[1].guard == 0 && r->transitions[1].handler == -1);
	CHECK(a->nentry == 2 && a->entry[0] == 2 && a->entry[1] == 2);
	CHECK(a->nexit == 1 && a->exit[0] == 2);
	CHECK(b != NULL && b->nentry == 1 && b->entry[0] == 2);
	CHECK(find_rule(b, "Back")->transitions[0].guard == 3);
	return true;
}

static bool
check_member_order(const MachineDef *def, char *why, size_t whylen)
{
	/* first use follows the members as written: handler, then guard */
	CHECK(def->nfunctions == 3);
	CHECK_STR(def->functions[0].name, "h");
	CHECK_STR(def->functions[1].name, "g");
	CHECK_STR(def->functions[2].name, "x");
	CHECK_STR(def->functions[2].path, "states.B.exit[0]");
	return true;
}

static bool
check_events(const MachineDef *def, char *why, size_t whylen)
{
	const MdEventSchema *es = md_find_event_schema(def, "Big");

	CHECK(def->nevents == 3);
	CHECK_STR(def->events[0].event, "Big");
	CHECK_STR(def->events[1].event, "Empty");
	CHECK_STR(def->events[2].event, "Small");
	CHECK(def->events[1].nfields == 0);
	CHECK(es != NULL && es->nfields == 8);
	CHECK_STR(es->fields[0].name, "$meta");
	CHECK(es->fields[0].type == MD_FIELD_ANY && es->fields[0].optional);
	CHECK_STR(es->fields[1].name, "a");
	CHECK(es->fields[1].type == MD_FIELD_ARRAY && !es->fields[1].optional);
	CHECK_STR(es->fields[2].name, "b");
	CHECK(es->fields[2].type == MD_FIELD_BOOLEAN && es->fields[2].optional);
	CHECK_STR(es->fields[3].name, "n");
	CHECK(es->fields[3].type == MD_FIELD_NUMBER && !es->fields[3].optional);
	CHECK_STR(es->fields[4].name, "o");
	CHECK(es->fields[4].type == MD_FIELD_OBJECT && es->fields[4].optional);
	CHECK_STR(es->fields[5].name, "s");
	CHECK(es->fields[5].type == MD_FIELD_STRING && !es->fields[5].optional);
	CHECK_STR(es->fields[6].name, "x");
	CHECK(es->fields[6].type == MD_FIELD_ANY && !es->fields[6].optional);
	CHECK_STR(es->fields[7].name, "z");
	CHECK(es->fields[7].type == MD_FIELD_STRING && es->fields[7].optional);
	return true;
}

static bool
check_persistence_defaults(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.enabled);
	CHECK(def->persistence.journal_events);
	CHECK(def->persistence.schedule == MD_SNAPSHOT_NEVER);
	CHECK(def->persistence.schedule_text == NULL);
	CHECK(def->persistence.machine_type == NULL);
	CHECK(def->persistence.adapter == NULL);
	CHECK(!def->needs_worker);
	return true;
}

static bool
check_recurs(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.enabled && !def->persistence.journal_events);
	CHECK(def->persistence.schedule == MD_SNAPSHOT_RECURS);
	CHECK(def->persistence.n == 5);
	CHECK_STR(def->persistence.schedule_text, "recurs 5");
	CHECK_STR(def->persistence.adapter, "memory");
	CHECK_STR(def->persistence.machine_type, "Order");
	return true;
}

static bool
check_recurs_zero(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.enabled && def->persistence.journal_events);
	CHECK(def->persistence.schedule == MD_SNAPSHOT_RECURS);
	CHECK(def->persistence.n == 0);
	CHECK_STR(def->persistence.schedule_text, "recurs 0");
	CHECK(!def->needs_worker);
	return true;
}

/* adapters are names the server resolves: the compiler keeps them as given */
static bool
check_adapter_schema(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.enabled && def->persistence.journal_events);
	CHECK_STR(def->persistence.adapter, "Order Store");
	CHECK(def->persistence.schedule == MD_SNAPSHOT_NEVER);
	return true;
}

static bool
check_adapter_tables(const MachineDef *def, char *why, size_t whylen)
{
	CHECK_STR(def->persistence.adapter, "tables");
	return true;
}

static bool
check_postpone(const MachineDef *def, char *why, size_t whylen)
{
	int			loading = md_find_state(def, "Loading");
	int			idle = md_find_state(def, "Idle");

	CHECK(def->postpones);
	CHECK(loading >= 0 && idle >= 0);
	CHECK(def->states[loading].npostpone == 2);
	CHECK_STR(def->states[loading].postpone[0], "Cancel");
	CHECK_STR(def->states[loading].postpone[1], "Save");
	CHECK(md_state_postpones(def, loading, "Save"));
	CHECK(md_state_postpones(def, loading, "Cancel"));
	CHECK(!md_state_postpones(def, loading, "Done"));
	CHECK(!md_state_postpones(def, idle, "Save"));
	/* postponing overrides "any" in that state only */
	CHECK(md_state_rule(def, loading, "Cancel") == NULL);
	CHECK(md_state_rule(def, idle, "Cancel") != NULL);
	CHECK(md_state_rule(def, loading, "Done") != NULL);
	return true;
}

static bool
check_no_postpone(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(!def->postpones);
	CHECK(def->states[0].npostpone == 0);
	CHECK(!md_state_postpones(def, 0, "Go"));
	return true;
}

static bool
check_every(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.schedule == MD_SNAPSHOT_EVERY);
	CHECK(def->persistence.n == 10);
	CHECK_STR(def->persistence.schedule_text, "  every   10  ");
	CHECK(!def->needs_worker);
	return true;
}

static bool
check_every_max(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.schedule == MD_SNAPSHOT_EVERY);
	CHECK(def->persistence.n == INT64_MAX);
	return true;
}

static bool
check_spaced(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.schedule == MD_SNAPSHOT_SPACED);
	CHECK(def->persistence.spaced_us == INT64_C(300000000));
	CHECK_STR(def->persistence.schedule_text, "spaced 5 minutes");
	CHECK(def->needs_worker);
	return true;
}

static bool
check_spaced_compound(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.schedule == MD_SNAPSHOT_SPACED);
	CHECK(def->persistence.spaced_us == INT64_C(5400500000));
	return true;
}

static bool
check_never(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->persistence.enabled);
	CHECK(def->persistence.schedule == MD_SNAPSHOT_NEVER);
	CHECK_STR(def->persistence.schedule_text, "never");
	return true;
}

static bool
check_timers(const MachineDef *def, char *why, size_t whylen)
{
	const MdState *a = find_state(def, "A");

	CHECK(a != NULL && a->ntimers == 3);
	CHECK(a->timers[0].delay_us == INT64_C(5400000000));
	CHECK_STR(a->timers[0].delay, "1.5 hours");
	CHECK_STR(a->timers[0].event_tag, "Tick");
	CHECK_STR(a->timers[0].event, "{\"_tag\":\"Tick\",\"n\":1,\"url\":\"a/b\",\"l\":[true,null,{\"k\":\"v\"}]}");
	CHECK(a->timers[1].delay_us == 10000000);
	CHECK_STR(a->timers[1].event_tag, "Stop");
	CHECK_STR(a->timers[1].event, "{\"_tag\":\"Stop\"}");
	CHECK(a->timers[2].delay_us == 250000);
	CHECK_STR(a->timers[2].event,
			  "{\"_tag\":\"Tick\",\"big\":18446744073709551614,\"neg\":-9223372036854775807}");
	CHECK(md_state_rule(def, md_find_state(def, "A"), "Stop") == &def->any[0]);
	CHECK(def->needs_worker);
	CHECK(!def->persistence.enabled);
	return true;
}

static bool
check_finals(const MachineDef *def, char *why, size_t whylen)
{
	int			done = md_find_state(def, "Done");

	CHECK(done >= 0 && def->states[done].final);
	CHECK(def->states[done].nentry == 1);
	CHECK(md_state_rule(def, done, "Reset") == NULL);
	CHECK(md_state_rule(def, md_find_state(def, "A"), "Reset") != NULL);
	return true;
}

static bool
check_precedence(const MachineDef *def, char *why, size_t whylen)
{
	int			a = md_find_state(def, "A");
	int			b = md_find_state(def, "B");
	const MdRule *r = md_state_rule(def, a, "Go");

	CHECK(r != NULL && r == find_rule(&def->states[a], "Go"));
	CHECK(r->transitions[0].target == b);
	r = md_state_rule(def, b, "Go");
	CHECK(r == &def->any[0] && r->transitions[0].target == a);
	return true;
}

static bool
check_limits(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->nstates == 2);
	CHECK(strlen(def->states[1].name) == 63);
	CHECK(def->initial == 1);
	CHECK(def->states[1].nrules == 1);
	CHECK(strlen(def->states[1].rules[0].event) == 63);
	CHECK(strlen(def->notify) == 63);
	CHECK(strlen(def->persistence.machine_type) == 63);
	CHECK(def->nfunctions == 1 && strlen(def->functions[0].name) == 127);
	CHECK(def->nevents == 1 && strlen(def->events[0].fields[0].name) == 63);
	return true;
}

static bool
check_utf8(const MachineDef *def, char *why, size_t whylen)
{
	/* byte order: "Zed" < "\xc3\x89tat" < "\xc3\x9c" "ber" */
	CHECK(def->nstates == 3);
	CHECK_STR(def->states[0].name, "Zed");
	CHECK_STR(def->states[1].name, "\xc3\x89tat");
	CHECK_STR(def->states[2].name, "\xc3\x9c" "ber");
	CHECK(def->initial == 2);
	CHECK(find_rule(&def->states[2], "\xc3\xa9v\xc3\xa9nement") != NULL);
	return true;
}

static bool
check_duplicate_key(const MachineDef *def, char *why, size_t whylen)
{
	/* json-c keeps the last of duplicate keys */
	CHECK(def->initial == md_find_state(def, "A"));
	return true;
}

/* Duplicate keys: json-c keeps the last value, in the first one's place */
static bool
check_duplicate_state(const MachineDef *def, char *why, size_t whylen)
{
	const MdState *a = find_state(def, "A");
	const MdRule *r = find_rule(a, "Go");

	CHECK(def->nstates == 2);
	CHECK(a != NULL && !a->final && a->nrules == 1);
	CHECK(r != NULL && r->transitions[0].target == md_find_state(def, "B"));
	return true;
}

static bool
check_duplicate_rule(const MachineDef *def, char *why, size_t whylen)
{
	const MdState *a = find_state(def, "A");

	CHECK(a != NULL && a->nrules == 1);
	CHECK_STR(a->rules[0].event, "Go");
	CHECK(a->rules[0].ntransitions == 1);
	CHECK(a->rules[0].transitions[0].target == md_find_state(def, "A"));
	return true;
}

static bool
check_duplicate_field(const MachineDef *def, char *why, size_t whylen)
{
	const MdEventSchema *es = md_find_event_schema(def, "E");

	CHECK(es != NULL && es->nfields == 1);
	CHECK_STR(es->fields[0].name, "x");
	CHECK(es->fields[0].type == MD_FIELD_NUMBER && es->fields[0].optional);
	return true;
}

static bool
check_duplicate_tag(const MachineDef *def, char *why, size_t whylen)
{
	const MdState *a = find_state(def, "A");

	CHECK(a != NULL && a->ntimers == 1);
	CHECK_STR(a->timers[0].event_tag, "Go");
	CHECK_STR(a->timers[0].event, "{\"_tag\":\"Go\",\"x\":1}");
	return true;
}

static bool
check_duplicate_entry(const MachineDef *def, char *why, size_t whylen)
{
	/* the second "entry" replaced the first, before "exit" */
	CHECK(def->nfunctions == 2);
	CHECK_STR(def->functions[0].name, "e2");
	CHECK_STR(def->functions[0].path, "states.A.entry[0]");
	CHECK_STR(def->functions[1].name, "x1");
	CHECK(def->states[0].nentry == 1 && def->states[0].entry[0] == 0);
	return true;
}

static bool
check_duplicate_states(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->nstates == 1);
	CHECK_STR(def->states[0].name, "B");
	return true;
}

static bool
check_numeric_names(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->nstates == 2);
	CHECK_STR(def->states[0].name, "1");
	CHECK_STR(def->states[1].name, "10");
	CHECK(def->initial == 1);
	CHECK(md_state_rule(def, 1, "2") != NULL);
	CHECK(md_find_event_schema(def, "2") != NULL);
	return true;
}

static bool
check_flags(const MachineDef *def, char *why, size_t whylen)
{
	const MdRule *r = find_rule(find_state(def, "A"), "Go");

	CHECK(r != NULL && r->ntransitions == 2);
	CHECK(!r->transitions[0].merge && !r->transitions[0].reenter);
	CHECK(r->transitions[1].merge && r->transitions[1].reenter);
	CHECK(r->transitions[1].guard == 0);
	CHECK(r->transitions[1].handler == -1);
	return true;
}

static bool
check_padded_function(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->nfunctions == 1);
	CHECK_STR(def->functions[0].name, " shop.f ");
	return true;
}

static bool
check_only_states(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->nstates == 2 && def->initial == 0);
	return true;
}

static bool
check_escapes(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(md_find_state(def, "A\"B") >= 0);
	CHECK(md_find_state(def, "tab\there") >= 0);
	CHECK(md_find_state(def, "\xc3\xa9") >= 0);
	CHECK(def->initial == md_find_state(def, "\xc3\xa9"));
	return true;
}

static bool
check_nothing_more(const MachineDef *def, char *why, size_t whylen)
{
	(void) def;
	(void) why;
	(void) whylen;
	return true;
}

static bool
check_entity_init(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->entity);
	CHECK(def->entity_init == 1);
	CHECK(def->nfunctions == 2);
	CHECK_STR(def->functions[1].name, "shop.new_cart");
	CHECK(def->functions[1].kind == MD_FN_ENTITY_INIT);
	CHECK_STR(def->functions[1].path, "entity.init");
	/* the same name as a handler is another function of another kind */
	CHECK_STR(def->functions[0].name, "shop.new_cart");
	CHECK(def->functions[0].kind == MD_FN_HANDLER);
	return true;
}

static bool
check_entity_plain(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->entity);
	CHECK(def->entity_init == -1);
	CHECK(def->nfunctions == 0);
	return true;
}

static bool
check_migrate_upcast(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->nfunctions == 3);
	CHECK(def->migrate >= 0 && def->upcast >= 0);
	CHECK_STR(def->functions[def->migrate].name, "shop.v2");
	CHECK(def->functions[def->migrate].kind == MD_FN_MIGRATE);
	CHECK_STR(def->functions[def->migrate].path, "migrate");
	CHECK_STR(def->functions[def->upcast].name, "shop.v2");
	CHECK(def->functions[def->upcast].kind == MD_FN_UPCAST);
	CHECK_STR(def->functions[def->upcast].path, "upcast");
	/* the handler of the same name is a third function */
	CHECK(def->migrate != def->upcast);
	return true;
}

static bool
check_no_migrate(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(def->migrate == -1);
	CHECK(def->upcast == -1);
	return true;
}

static bool
check_not_entity(const MachineDef *def, char *why, size_t whylen)
{
	CHECK(!def->entity);
	CHECK(def->entity_init == -1);
	return true;
}

typedef struct ValidCase
{
	const char *description;
	const char *json;
	bool		(*check) (const MachineDef *def, char *why, size_t whylen);
} ValidCase;

static const ValidCase valid_cases[] = {
	{"the order example compiles to the expected form", ORDER_EXAMPLE,
	check_spec_example},
	{"lookups on the order example", ORDER_EXAMPLE, check_spec_lookups},
	{"a minimal definition gets the defaults",
		"{'initial': 'A', 'states': {'A': {}}}", check_minimal},
	{"unhandled ignore, notify, descriptions",
		"{'description': 'demo', 'initial': 'A', 'unhandled': 'ignore',"
		" 'notify': 'chan_1', 'states': {'A': {'description': 'the only one'}}}",
	check_ignore_notify},
	{"an entity with an init function",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': {'target': 'A', 'handler': 'shop.new_cart'}}}},"
		" 'entity': {'init': 'shop.new_cart'}}", check_entity_init},
	{"an entity without init starts from {}",
		"{'initial': 'A', 'states': {'A': {}}, 'entity': {}}", check_entity_plain},
	{"a machine is no entity unless it says so",
		"{'initial': 'A', 'states': {'A': {}}}", check_not_entity},
	{"migrate and upcast functions, one name for three kinds",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': {'target': 'A', 'handler': 'shop.v2'}}}},"
		" 'migrate': 'shop.v2', 'upcast': 'shop.v2'}", check_migrate_upcast},
	{"no migrate and no upcast unless given",
		"{'initial': 'A', 'states': {'A': {}}}", check_no_migrate},
	{"unhandled error is the default, stated",
		"{'initial': 'A', 'unhandled': 'error', 'states': {'A': {}}}",
	check_minimal},
	{"states and rules are sorted by name, targets follow",
		"{'initial': 'M', 'states': {'Z': {}, 'M': {'on': {'c': 'Z', 'b': 'M', 'a': 'A'}},"
		" 'A': {}}, 'any': {'y': 'A', 'Y': 'M', 'X': 'Z'}}", check_sorting},
	{"an array of state names is a list of candidates",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': ['B', 'C', 'A']}}, 'B': {}, 'C': {}}}",
	check_string_candidates},
	{"a handler without target leaves the target to the handler",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': {'handler': 'pick_state'}}}},"
		" 'any': {'Stop': {'handler': 'pick_state', 'guard': 'may_stop'}}}",
	check_handler_only},
	{"functions are distinct (name, kind) pairs in first-use order",
		"{'initial': 'A', 'states': {"
		" 'A': {'on': {'Go': [{'target': 'B', 'guard': 'g', 'handler': 'g'},"
		"                     {'target': 'A', 'guard': 'g'}]},"
		"       'entry': ['e', 'e'], 'exit': ['e']},"
		" 'B': {'entry': ['e'], 'on': {'Back': {'target': 'A', 'guard': 'e'}}}}}",
	check_dedup},
	{"first use follows member order as written",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': {'handler': 'h', 'guard': 'g',"
		" 'target': 'B'}}}, 'B': {'exit': ['x'], 'on': {'Go': 'A'}}}}",
	check_member_order},
	{"event schemas: every type, optional fields, sorted",
		"{'initial': 'A', 'states': {'A': {}}, 'events': {"
		" 'Small': {'s': 'string'}, 'Empty': {},"
		" 'Big': {'z': 'string?', 's': 'string', 'n': 'number', 'b': 'boolean?',"
		"         'o': 'object?', 'a': 'array', 'x': 'any', '$meta': 'any?'}}}",
	check_events},
	{"an empty persistence object enables the defaults",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {}}",
	check_persistence_defaults},
	{"persistence: recurs N, journalEvents false, adapter, machineType",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'snapshotSchedule': 'recurs 5',"
		" 'journalEvents': false, 'adapter': 'memory', 'machineType': 'Order'}}",
	check_recurs},
	{"persistence: an adapter naming a schema is kept as written",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'adapter': 'Order Store'}}",
	check_adapter_schema},
	{"persistence: the built-in adapter named explicitly",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'adapter': 'tables'}}",
	check_adapter_tables},
	{"postpone: sorted, overrides any",
		"{'initial': 'Idle', 'states': {'Idle': {'on': {'Load': 'Loading', 'Save': 'Idle'}},"
		" 'Loading': {'on': {'Done': 'Idle'}, 'postpone': ['Save', 'Cancel']}},"
		" 'any': {'Cancel': 'Idle'}}",
	check_postpone},
	{"postpone: an empty list postpones nothing",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': 'A'}, 'postpone': []}}}",
	check_no_postpone},
	{"persistence: recurs 0 takes no automatic snapshot",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'snapshotSchedule': 'recurs 0'}}",
	check_recurs_zero},
	{"persistence: every N, extra whitespace tolerated",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'snapshotSchedule': '  every   10  '}}",
	check_every},
	{"persistence: every N at the int64 limit",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'snapshotSchedule': 'every 9223372036854775807'}}",
	check_every_max},
	{"persistence: spaced INTERVAL needs the worker",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'snapshotSchedule': 'spaced 5 minutes'}}",
	check_spaced},
	{"persistence: spaced with a compound interval",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'snapshotSchedule': 'spaced\\t1 hour 30 min 500ms'}}",
	check_spaced_compound},
	{"persistence: never, stated",
		"{'initial': 'A', 'states': {'A': {}}, 'persistence': {'snapshotSchedule': 'never'}}",
	check_never},
	{"timers: order, delays, compact event text, accepted through any",
		"{'initial': 'A', 'states': {'A': {'on': {'Tick': 'A'}, 'after': ["
		" {'delay': '1.5 hours', 'event': {'_tag': 'Tick', 'n': 1, 'url': 'a/b', 'l': [true, null, {'k': 'v'}]}},"
		" {'event': {'_tag': 'Stop'}, 'delay': '10s'},"
		" {'delay': '250 ms', 'event': {'_tag': 'Tick', 'big': 18446744073709551614, 'neg': -9223372036854775807}}]},"
		" 'B': {'final': true}}, 'any': {'Stop': 'B'}}",
	check_timers},
	{"final states may have entry effects and empty on, after, exit",
		"{'initial': 'A', 'states': {'A': {'on': {'Finish': 'Done'}},"
		" 'Done': {'final': true, 'on': {}, 'after': [], 'exit': [], 'entry': ['bye']}},"
		" 'any': {'Reset': 'A'}}",
	check_finals},
	{"a state's own rule wins over any",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': 'B'}}, 'B': {}}, 'any': {'Go': 'A'}}",
	check_precedence},
	{"names at their length limits",
		"{'initial': '" X63 "', 'notify': '" X63 "', 'states': {'A': {}, '" X63 "':"
		" {'on': {'" X63 "': {'target': 'A', 'guard': '" X127 "'}}}},"
		" 'events': {'E': {'" X63 "': 'any'}},"
		" 'persistence': {'machineType': '" X63 "'}}",
	check_limits},
	{"UTF-8 names sort by bytes",
		"{'initial': '\xc3\x9c" "ber', 'states': {'\xc3\x9c" "ber': {'on': {'\xc3\xa9v\xc3\xa9nement': 'Zed'}},"
		" '\xc3\x89tat': {}, 'Zed': {}}}",
	check_utf8},
	{"duplicate keys: the last one wins",
		"{'initial': 'B', 'initial': 'A', 'states': {'A': {}, 'B': {}}}",
	check_duplicate_key},
	{"duplicate states: the last body wins",
		"{'initial': 'A', 'states': {'A': {'final': true}, 'B': {}, 'A': {'on': {'Go': 'B'}}}}",
	check_duplicate_state},
	{"duplicate event tags in on: the last wins",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': 'B', 'Go': 'A'}}, 'B': {}}}",
	check_duplicate_rule},
	{"duplicate transition keys: the last target wins, the first is not checked",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': {'target': 'Nope', 'target': 'A'}}}}}",
	check_duplicate_rule},
	{"duplicate fields: the last type wins",
		"{'initial': 'A', 'states': {'A': {}}, 'events': {'E': {'x': 'string', 'x': 'number?'}}}",
	check_duplicate_field},
	{"duplicate _tag in a timer's event: the last wins",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': 'A'}, 'after': [{'delay': '1s',"
		" 'event': {'_tag': 'Nope', 'x': 1, '_tag': 'Go'}}]}}}",
	check_duplicate_tag},
	{"duplicate entry: the last array, walked in the first one's place",
		"{'initial': 'A', 'states': {'A': {'entry': ['e1'], 'exit': ['x1'], 'entry': ['e2']}}}",
	check_duplicate_entry},
	{"duplicate states objects: the last wins",
		"{'initial': 'B', 'states': {'A': {}}, 'states': {'B': {}}}",
	check_duplicate_states},
	{"names that look like numbers are names",
		"{'initial': '10', 'states': {'1': {}, '10': {'on': {'2': '1'}}}, 'events': {'2': {'3': 'number'}}}",
	check_numeric_names},
	{"merge and reenter, false and true",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': [{'target': 'A', 'merge': false,"
		" 'reenter': false}, {'target': 'A', 'merge': true, 'reenter': true, 'guard': 'g'}]}}}}",
	check_flags},
	{"function names are kept as written",
		"{'initial': 'A', 'states': {'A': {'entry': [' shop.f ']}}}",
	check_padded_function},
	{"whitespace around the value is fine",
		" \n\t {'states': {'A': {}, 'B': {}}, 'initial': 'A'} \n\r\t ",
	check_only_states},
	{"escaped characters in names",
		"{'initial': '\\u00e9', 'states': {'A\\'B': {}, 'tab\\there': {}, '\\u00e9': {}}}",
	check_escapes},
	{"a timer may use a state's own rule and an any rule",
		"{'initial': 'A', 'states': {'A': {'on': {'T': 'A'}, 'after': [{'delay': '1 us',"
		" 'event': {'_tag': 'T'}}, {'delay': '1 w', 'event': {'_tag': 'U', 'x': -1.5e3}}]}},"
		" 'any': {'U': 'A'}}",
	check_nothing_more},
	{"the description may be any string, even empty",
		"{'description': '', 'initial': 'A', 'states': {'A': {'description': ''}}}",
	check_nothing_more},
};

/* ----------------------------------------------------------------
 * Invalid definitions: the exact message
 * ----------------------------------------------------------------
 */

typedef struct ErrorCase
{
	const char *description;
	const char *json;
	const char *error;
} ErrorCase;

#define UNITS "use microseconds, milliseconds, seconds, minutes, hours, days or weeks"
#define ONE_STATE(state_body) \
	"{'initial': 'A', 'states': {'A': " state_body "}}"
#define WITH_A(rest) \
	"{'initial': 'A', 'states': {'A': {}}, " rest "}"
#define TIMER(timer) \
	"{'initial': 'A', 'states': {'A': {'on': {'Go': 'A'}, 'after': [" timer "]}}}"
#define SCHEDULE(s) \
	WITH_A("'persistence': {'snapshotSchedule': '" s "'}")

static const ErrorCase error_cases[] = {
	/* the text */
	{"empty text", "", "definition: invalid JSON: unexpected end of data"},
	{"whitespace only", "  \n ", "definition: invalid JSON: unexpected end of data"},
	{"unterminated object", "{'initial': 'A'",
	"definition: invalid JSON: unexpected end of data"},
	{"unterminated string", "{'initial': 'A",
	"definition: invalid JSON: unexpected end of data"},
	{"garbage after the value", ONE_STATE("{}") " x",
	"definition: invalid JSON: unexpected character"},
	{"two values", "{}{}", "definition: invalid JSON: unexpected character"},
	{"trailing comma", "{'initial': 'A',}",
	"definition: invalid JSON: unexpected character"},
	{"invalid UTF-8", "{'initial': '\xff', 'states': {'A': {}}}",
	"definition: invalid JSON: invalid utf-8 string"},
	{"invalid UTF-8 in a key", "{'initial': 'A', 'states': {'A\xc3': {}}}",
	"definition: invalid JSON: invalid utf-8 string"},
	{"a lone continuation byte in a key",
		"{'initial': 'A', 'states': {'A': {}, 'x\x80" "y': {}}}",
	"definition: invalid JSON: invalid utf-8 string"},
	{"a UTF-8 sequence cut short in a key",
		"{'initial': 'A', 'states': {'A': {}, '\xe2\x82': {}}}",
	"definition: invalid JSON: invalid utf-8 string"},
	{"a UTF-8 sequence cut short at the end of the text",
		"{'initial': 'A', 'states': {'A': {}}, 'description': '\xf0\x9f\x98",
	"definition: invalid JSON: invalid utf-8 string"},
	{"a non-ASCII byte outside strings",
		"{'initial': 'A', \xc3\xa9 'states': {'A': {}}}",
	"definition: invalid JSON: invalid utf-8 string"},
	{"a byte order mark", "\xef\xbb\xbf{'initial': 'A', 'states': {'A': {}}}",
	"definition: invalid JSON: invalid utf-8 string"},
	{"an array is not a definition", "[]", "definition: must be a JSON object"},
	{"a string is not a definition", "'A'", "definition: must be a JSON object"},
	{"null is not a definition", "null", "definition: must be a JSON object"},
	{"a number is not a definition", "42", "definition: must be a JSON object"},
	{"true is not a definition", "true", "definition: must be a JSON object"},

	/* the root */
	{"unknown root key", "{'initial': 'A', 'states': {'A': {}}, 'foo': 1}",
	"foo: unknown key"},
	{"the first problem in member order is reported",
		"{'foo': 1, 'initial': 2, 'states': {'A': {}}}", "foo: unknown key"},
	{"the first problem in member order is reported, again",
		"{'initial': 2, 'foo': 1, 'states': {'A': {}}}", "initial: must be a string"},
	{"a duplicate key is walked where the first one stood",
		"{'initial': 1, 'foo': 2, 'initial': 'A', 'states': {'A': {}}}", "foo: unknown key"},
	{"a duplicate key: the last value is the one checked",
		"{'initial': 'A', 'states': {'A': {}}, 'initial': 2}", "initial: must be a string"},
	{"initial is required", "{'states': {'A': {}}}", "initial: is required"},
	{"initial must be a string", "{'initial': 1, 'states': {'A': {}}}",
	"initial: must be a string"},
	{"initial must not be null", "{'initial': null, 'states': {'A': {}}}",
	"initial: must be a string"},
	{"initial must not be an infinite number", "{'initial': 1e999, 'states': {'A': {}}}",
	"initial: must be a string"},
	{"initial must not be a number that looks like a state",
		"{'initial': 1, 'states': {'1': {}}}", "initial: must be a string"},
	{"initial must be declared", "{'initial': 'B', 'states': {'A': {}}}",
	"initial: \"B\" is not a state"},
	{"states is required", "{'initial': 'A'}", "states: is required"},
	{"states is checked before the other members",
		"{'foo': 1, 'initial': 'A', 'states': {}}",
	"states: must be a non-empty object"},
	{"states must not be an empty object", "{'initial': 'A', 'states': {}}",
	"states: must be a non-empty object"},
	{"states must not be an array", "{'initial': 'A', 'states': ['A']}",
	"states: must be a non-empty object"},
	{"states must not be a string", "{'initial': 'A', 'states': 'A'}",
	"states: must be a non-empty object"},
	{"description must be a string", "{'initial': 'A', 'states': {'A': {}}, 'description': 7}",
	"description: must be a string"},

	/* state names and bodies */
	{"empty state name", "{'initial': 'A', 'states': {'A': {}, '': {}}}",
	"states.\"\": a state name must not be empty"},
	{"state name too long", "{'initial': 'A', 'states': {'A': {}, '" X64 "': {}}}",
	"states." X64 ": a state name must be at most 63 bytes"},
	{"state name starting with $", "{'initial': 'A', 'states': {'A': {}, '$init': {}}}",
	"states.$init: a state name must not start with \"$\"; such names are reserved"},
	{"state must be an object", "{'initial': 'A', 'states': {'A': 1}}",
	"states.A: must be an object"},
	{"state must not be null", "{'initial': 'A', 'states': {'A': null}}",
	"states.A: must be an object"},
	{"unknown state key", ONE_STATE("{'onn': {}}"), "states.A.onn: unknown key"},
	{"state description must be a string", ONE_STATE("{'description': false}"),
	"states.A.description: must be a string"},
	{"final must be a boolean", ONE_STATE("{'final': 'yes'}"),
	"states.A.final: must be a boolean"},
	{"final state with transitions", ONE_STATE("{'final': true, 'on': {'Go': 'A'}}"),
	"states.A.on: a final state accepts no events"},
	{"final state with transitions, final written last",
		ONE_STATE("{'on': {'Go': 'A'}, 'final': true}"),
	"states.A.on: a final state accepts no events"},
	{"final state with timers",
		ONE_STATE("{'final': true, 'after': [{'delay': '1s', 'event': {'_tag': 'T'}}]}"),
	"states.A.after: a final state cannot have timers"},
	{"final state with exit effects", ONE_STATE("{'final': true, 'exit': ['bye']}"),
	"states.A.exit: a final state is never left, so it cannot have exit effects"},
	{"final state postponing", ONE_STATE("{'final': true, 'postpone': ['Go']}"),
	"states.A.postpone: a final state accepts no events, so it cannot postpone any"},
	{"postpone must be an array", ONE_STATE("{'postpone': 'Go'}"),
	"states.A.postpone: must be an array of event tags"},
	{"postpone takes strings", ONE_STATE("{'postpone': ['Go', 3]}"),
	"states.A.postpone[1]: must be a string"},
	{"postponed tags are event tags", ONE_STATE("{'postpone': ['$init']}"),
	"states.A.postpone[0]: an event tag must not start with \"$\"; such names are reserved"},
	{"postponed tags are not empty", ONE_STATE("{'postpone': ['']}"),
	"states.A.postpone[0]: an event tag must not be empty"},
	{"an event postponed twice", ONE_STATE("{'postpone': ['Go', 'Stop', 'Go']}"),
	"states.A.postpone: lists event \"Go\" twice"},
	{"an event handled and postponed", ONE_STATE("{'on': {'Go': 'A'}, 'postpone': ['Go']}"),
	"states.A.postpone: event \"Go\" is handled by this state's \"on\", so it cannot be postponed"},
	{"a timer's event postponed by its state",
		"{'initial': 'A', 'states': {'A': {'postpone': ['T'], 'after': [{'delay': '1s', 'event': {'_tag': 'T'}}]}},"
		" 'any': {'T': 'A'}}",
	"states.A.after[0].event: state \"A\" does not accept event \"T\""},

	/* on */
	{"on must be an object", ONE_STATE("{'on': []}"), "states.A.on: must be an object"},
	{"on must not be a string", ONE_STATE("{'on': 'A'}"), "states.A.on: must be an object"},
	{"a rule must not be a number", ONE_STATE("{'on': {'Go': 1}}"),
	"states.A.on.Go: must be a state name, a transition object or an array of them"},
	{"a rule must not be null", ONE_STATE("{'on': {'Go': null}}"),
	"states.A.on.Go: must be a state name, a transition object or an array of them"},
	{"a rule must not be an empty array", ONE_STATE("{'on': {'Go': []}}"),
	"states.A.on.Go: must not be an empty array"},
	{"a candidate must not be a number", ONE_STATE("{'on': {'Go': ['A', 2]}}"),
	"states.A.on.Go[1]: must be a state name or a transition object"},
	{"a candidate must not be an array", ONE_STATE("{'on': {'Go': [['A']]}}"),
	"states.A.on.Go[0]: must be a state name or a transition object"},
	{"empty event tag", ONE_STATE("{'on': {'': 'A'}}"),
	"states.A.on.\"\": an event tag must not be empty"},
	{"event tag starting with $", ONE_STATE("{'on': {'$init': 'A'}}"),
	"states.A.on.$init: an event tag must not start with \"$\"; such names are reserved"},
	{"event tag too long", ONE_STATE("{'on': {'" X64 "': 'A'}}"),
	"states.A.on." X64 ": an event tag must be at most 63 bytes"},
	{"the example of a misspelt target",
		"{'initial': 'Pending', 'states': {'Pending': {'on': {'Pay': 'Paid'}},"
		" 'Paid': {'on': {'Ship': {'target': 'Shiped'}}}, 'Shipped': {'final': true}}}",
	"states.Paid.on.Ship.target: \"Shiped\" is not a state"},
	{"the order example, in its shorthand form",
		"{'initial': 'Paid', 'states': {'Paid': {'on': {'Ship': 'Shiped'}}}}",
	"states.Paid.on.Ship.target: \"Shiped\" is not a state"},
	{"a misspelt target in a candidate list",
		"{'initial': 'Pending', 'states': {'Pending': {'on': {'Pay': [{'target': 'Shiped'}]}},"
		" 'Shipped': {}}}",
	"states.Pending.on.Pay[0].target: \"Shiped\" is not a state"},
	{"an undeclared target written as a string", ONE_STATE("{'on': {'Go': 'B'}}"),
	"states.A.on.Go.target: \"B\" is not a state"},
	{"an undeclared target in a list of strings", ONE_STATE("{'on': {'Go': ['A', 'B']}}"),
	"states.A.on.Go[1].target: \"B\" is not a state"},
	{"an empty target", ONE_STATE("{'on': {'Go': ''}}"),
	"states.A.on.Go.target: \"\" is not a state"},
	{"targets are case-sensitive", ONE_STATE("{'on': {'Go': 'a'}}"),
	"states.A.on.Go.target: \"a\" is not a state"},
	{"unknown transition key", ONE_STATE("{'on': {'Go': {'target': 'A', 'when': 'x'}}}"),
	"states.A.on.Go.when: unknown key"},
	{"target must be a string", ONE_STATE("{'on': {'Go': {'target': 1}}}"),
	"states.A.on.Go.target: must be a string"},
	{"target must not be null", ONE_STATE("{'on': {'Go': {'target': null}}}"),
	"states.A.on.Go.target: must be a string"},
	{"guard must be a string", ONE_STATE("{'on': {'Go': {'target': 'A', 'guard': 1}}}"),
	"states.A.on.Go.guard: must be a string"},
	{"handler must be a string", ONE_STATE("{'on': {'Go': {'handler': ['h']}}}"),
	"states.A.on.Go.handler: must be a string"},
	{"merge must be a boolean", ONE_STATE("{'on': {'Go': {'target': 'A', 'merge': 'true'}}}"),
	"states.A.on.Go.merge: must be a boolean"},
	{"reenter must be a boolean", ONE_STATE("{'on': {'Go': {'target': 'A', 'reenter': 1}}}"),
	"states.A.on.Go.reenter: must be a boolean"},
	{"a transition needs a target or a handler", ONE_STATE("{'on': {'Go': {}}}"),
	"states.A.on.Go: needs a target or a handler"},
	{"a guard alone is not a transition", ONE_STATE("{'on': {'Go': ['A', {'guard': 'g'}]}}"),
	"states.A.on.Go[1]: needs a target or a handler"},
	{"merge with a handler", ONE_STATE("{'on': {'Go': {'handler': 'h', 'merge': true}}}"),
	"states.A.on.Go.merge: cannot be combined with a handler; the handler returns the new data"},
	{"merge with a handler and a target",
		ONE_STATE("{'on': {'Go': {'merge': true, 'target': 'A', 'handler': 'h'}}}"),
	"states.A.on.Go.merge: cannot be combined with a handler; the handler returns the new data"},
	{"empty guard", ONE_STATE("{'on': {'Go': {'target': 'A', 'guard': ''}}}"),
	"states.A.on.Go.guard: a function name must not be empty"},
	{"blank guard", ONE_STATE("{'on': {'Go': {'target': 'A', 'guard': ' \\t\\n '}}}"),
	"states.A.on.Go.guard: a function name must not be empty"},
	{"handler name too long", ONE_STATE("{'on': {'Go': {'handler': '" X128 "'}}}"),
	"states.A.on.Go.handler: a function name must be at most 127 bytes"},
	{"NUL in a guard", ONE_STATE("{'on': {'Go': {'target': 'A', 'guard': 'g\\u0000x'}}}"),
	"states.A.on.Go.guard: must not contain NUL characters"},
	{"NUL in a target", ONE_STATE("{'on': {'Go': {'target': 'A\\u0000'}}}"),
	"states.A.on.Go.target: must not contain NUL characters"},

	/* entry and exit */
	{"entry must be an array", ONE_STATE("{'entry': 'f'}"),
	"states.A.entry: must be an array of function names"},
	{"exit must not be null", ONE_STATE("{'exit': null}"),
	"states.A.exit: must be an array of function names"},
	{"entry elements must be strings", ONE_STATE("{'entry': ['f', 1]}"),
	"states.A.entry[1]: must be a string"},
	{"exit elements must not be empty", ONE_STATE("{'exit': ['']}"),
	"states.A.exit[0]: a function name must not be empty"},

	/* after */
	{"after must be an array", ONE_STATE("{'after': {}}"), "states.A.after: must be an array"},
	{"a timer must be an object", ONE_STATE("{'after': ['1s']}"),
	"states.A.after[0]: must be an object"},
	{"unknown timer key", TIMER("{'delay': '1s', 'event': {'_tag': 'Go'}, 'repeat': true}"),
	"states.A.after[0].repeat: unknown key"},
	{"a timer needs a delay", TIMER("{'event': {'_tag': 'Go'}}"),
	"states.A.after[0].delay: is required"},
	{"a timer needs an event", TIMER("{'delay': '1s'}"),
	"states.A.after[0].event: is required"},
	{"delay must be a string", TIMER("{'delay': 30, 'event': {'_tag': 'Go'}}"),
	"states.A.after[0].delay: must be a string"},
	{"delay with an unknown unit", TIMER("{'delay': '2 fortnights', 'event': {'_tag': 'Go'}}"),
	"states.A.after[0].delay: \"fortnights\" is not a unit of time; " UNITS},
	{"delay of zero", TIMER("{'delay': '0 seconds', 'event': {'_tag': 'Go'}}"),
	"states.A.after[0].delay: interval \"0 seconds\" must be positive"},
	{"delay in months", TIMER("{'delay': '1 month', 'event': {'_tag': 'Go'}}"),
	"states.A.after[0].delay: months and years have no fixed length; use days, e.g. \"30 days\""},
	{"the event must be an object", TIMER("{'delay': '1s', 'event': 'Go'}"),
	"states.A.after[0].event: must be an object with a string \"_tag\""},
	{"the event needs a _tag", TIMER("{'delay': '1s', 'event': {'tag': 'Go'}}"),
	"states.A.after[0].event._tag: is required"},
	{"the event _tag must be a string", TIMER("{'delay': '1s', 'event': {'_tag': 1}}"),
	"states.A.after[0].event._tag: must be a string"},
	{"the event _tag must not be empty", TIMER("{'delay': '1s', 'event': {'_tag': ''}}"),
	"states.A.after[0].event._tag: an event tag must not be empty"},
	{"the event _tag must not start with $", TIMER("{'delay': '1s', 'event': {'_tag': '$init'}}"),
	"states.A.after[0].event._tag: an event tag must not start with \"$\"; such names are reserved"},
	{"the state must accept the timer's event",
		"{'initial': 'Pending', 'states': {'Pending': {'on': {'Pay': 'Paid'},"
		" 'after': [{'delay': '30 minutes', 'event': {'_tag': 'Expire'}}]}, 'Paid': {}}}",
	"states.Pending.after[0].event: state \"Pending\" does not accept event \"Expire\""},
	{"a timer's event must have its schema's required fields",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': 'A'},"
		" 'after': [{'delay': '1s', 'event': {'_tag': 'Go'}}]}},"
		" 'events': {'Go': {'n': 'number', 'note': 'string?'}}}",
	"states.A.after[0].event: event \"Go\" has no field \"n\""},
	{"a timer's event fields must have their schema's types",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': 'A'},"
		" 'after': [{'delay': '1s', 'event': {'_tag': 'Go', 'n': 'one'}}]}},"
		" 'events': {'Go': {'n': 'number'}}}",
	"states.A.after[0].event: field \"n\" of event \"Go\" must be a number"},
	{"a timer's event must not have fields its schema lacks",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': 'A'},"
		" 'after': [{'delay': '1s', 'event': {'_tag': 'Go', 'n': 1, 'extra': true}}]}},"
		" 'events': {'Go': {'n': 'number'}}}",
	"states.A.after[0].event: event \"Go\" has an undeclared field \"extra\""},
	{"each timer is checked",
		"{'initial': 'A', 'states': {'A': {'on': {'Go': 'A'}, 'after': ["
		"{'delay': '1s', 'event': {'_tag': 'Go'}}, {'delay': '1s', 'event': {'_tag': 'Gone'}}]}},"
		" 'any': {'Went': 'A'}}",
	"states.A.after[1].event: state \"A\" does not accept event \"Gone\""},
	{"another state's rule does not count",
		"{'initial': 'A', 'states': {'A': {'after': [{'delay': '1s', 'event': {'_tag': 'Go'}}]},"
		" 'B': {'on': {'Go': 'A'}}}}",
	"states.A.after[0].event: state \"A\" does not accept event \"Go\""},
	{"NaN in a timer's event", TIMER("{'delay': '1s', 'event': {'_tag': 'Go', 'x': NaN}}"),
	"states.A.after[0].event.x: must be a finite number"},
	{"an infinite number in a timer's event",
		TIMER("{'delay': '1s', 'event': {'_tag': 'Go', 'x': {'y': -1e999}}}"),
	"states.A.after[0].event.x.y: must be a finite number"},
	{"an integer json-c would clamp in a timer's event",
		TIMER("{'delay': '1s', 'event': {'_tag': 'Go', 'x': [1, 99999999999999999999]}}"),
	"states.A.after[0].event.x[1]: is out of range"},
	{"a negative integer json-c would clamp in a timer's event",
		TIMER("{'delay': '1s', 'event': {'_tag': 'Go', 'x': -99999999999999999999}}"),
	"states.A.after[0].event.x: is out of range"},
	{"NUL in a timer's event", TIMER("{'delay': '1s', 'event': {'_tag': 'Go', 'x': ['a', 'b\\u0000']}}"),
	"states.A.after[0].event.x[1]: must not contain NUL characters"},

	/* any */
	{"migrate must be a string", WITH_A("'migrate': {'fn': 'shop.v2'}"),
	"migrate: must be a string"},
	{"migrate must not be null", WITH_A("'migrate': null"), "migrate: must be a string"},
	{"migrate must not be empty", WITH_A("'migrate': ''"),
	"migrate: a function name must not be empty"},
	{"migrate of 128 bytes", WITH_A("'migrate': '" X128 "'"),
	"migrate: a function name must be at most 127 bytes"},
	{"upcast must be a string", WITH_A("'upcast': ['shop.v2']"),
	"upcast: must be a string"},
	{"upcast must not be blank", WITH_A("'upcast': '  '"),
	"upcast: a function name must not be empty"},
	{"upcast must not be a number", WITH_A("'upcast': 2"), "upcast: must be a string"},
	{"entity must be an object", WITH_A("'entity': true"), "entity: must be an object"},
	{"entity must not be a function name", WITH_A("'entity': 'shop.init'"),
	"entity: must be an object"},
	{"entity with an unknown key", WITH_A("'entity': {'initialize': 'shop.init'}"),
	"entity.initialize: unknown key"},
	{"entity init must be a string", WITH_A("'entity': {'init': ['shop.init']}"),
	"entity.init: must be a string"},
	{"entity init must not be empty", WITH_A("'entity': {'init': ' '}"),
	"entity.init: a function name must not be empty"},
	{"entity init must not be null", WITH_A("'entity': {'init': null}"),
	"entity.init: must be a string"},
	{"entity init of 128 bytes", WITH_A("'entity': {'init': '" X128 "'}"),
	"entity.init: a function name must be at most 127 bytes"},
	{"any must be an object", WITH_A("'any': 'A'"), "any: must be an object"},
	{"any with an undeclared target", WITH_A("'any': {'Go': 'B'}"),
	"any.Go.target: \"B\" is not a state"},
	{"any with a reserved tag", WITH_A("'any': {'$restore': 'A'}"),
	"any.$restore: an event tag must not start with \"$\"; such names are reserved"},
	{"any with merge and handler", WITH_A("'any': {'Go': [{'handler': 'h', 'merge': true}]}"),
	"any.Go[0].merge: cannot be combined with a handler; the handler returns the new data"},

	/* events */
	{"events must be an object", WITH_A("'events': []"), "events: must be an object"},
	{"an event schema must be an object", WITH_A("'events': {'Pay': 'number'}"),
	"events.Pay: must be an object mapping field names to types"},
	{"an unknown field type",
		WITH_A("'events': {'Pay': {'amount': 'int'}}"),
	"events.Pay.amount: \"int\" is not a type; expected string, number, boolean, object, array or any (with an optional trailing \"?\")"},
	{"a field type must be a string", WITH_A("'events': {'Pay': {'amount': 1}}"),
	"events.Pay.amount: must be a string"},
	{"a lone ? is not a type", WITH_A("'events': {'Pay': {'amount': '?'}}"),
	"events.Pay.amount: \"?\" is not a type; expected string, number, boolean, object, array or any (with an optional trailing \"?\")"},
	{"field types are lower-case", WITH_A("'events': {'Pay': {'amount': 'Number'}}"),
	"events.Pay.amount: \"Number\" is not a type; expected string, number, boolean, object, array or any (with an optional trailing \"?\")"},
	{"one ? only", WITH_A("'events': {'Pay': {'amount': 'number?\?'}}"),
	"events.Pay.amount: \"number??\" is not a type; expected string, number, boolean, object, array or any (with an optional trailing \"?\")"},
	{"_tag cannot be declared", WITH_A("'events': {'Pay': {'_tag': 'string'}}"),
	"events.Pay._tag: \"_tag\" cannot be declared; every event has one"},
	{"empty field name", WITH_A("'events': {'Pay': {'': 'string'}}"),
	"events.Pay.\"\": a field name must not be empty"},
	{"field name too long", WITH_A("'events': {'Pay': {'" X64 "': 'string'}}"),
	"events.Pay." X64 ": a field name must be at most 63 bytes"},
	{"reserved event tag in events", WITH_A("'events': {'$init': {}}"),
	"events.$init: an event tag must not start with \"$\"; such names are reserved"},

	/* unhandled, notify */
	{"unhandled must be error or ignore", WITH_A("'unhandled': 'panic'"),
	"unhandled: must be \"error\" or \"ignore\""},
	{"unhandled must be a string", WITH_A("'unhandled': false"),
	"unhandled: must be \"error\" or \"ignore\""},
	{"unhandled with a NUL", WITH_A("'unhandled': 'error\\u0000x'"),
	"unhandled: must be \"error\" or \"ignore\""},
	{"notify must not be empty", WITH_A("'notify': ''"), "notify: must not be empty"},
	{"notify must be a string", WITH_A("'notify': 1"), "notify: must be a string"},
	{"notify too long", WITH_A("'notify': '" X64 "'"), "notify: must be at most 63 bytes"},

	/* persistence */
	{"persistence must be an object", WITH_A("'persistence': true"),
	"persistence: must be an object"},
	{"unknown persistence key", WITH_A("'persistence': {'snapshots': 'never'}"),
	"persistence.snapshots: unknown key"},
	{"an unknown schedule", SCHEDULE("weekly"),
	"persistence.snapshotSchedule: \"weekly\" is not a schedule; expected forever, never, recurs N, every N or spaced INTERVAL"},
	{"the schedule must be a string", WITH_A("'persistence': {'snapshotSchedule': 5}"),
	"persistence.snapshotSchedule: must be a string"},
	{"an empty schedule", SCHEDULE(""),
	"persistence.snapshotSchedule: \"\" is not a schedule; expected forever, never, recurs N, every N or spaced INTERVAL"},
	{"schedule words are lower-case", SCHEDULE("Forever"),
	"persistence.snapshotSchedule: \"Forever\" is not a schedule; expected forever, never, recurs N, every N or spaced INTERVAL"},
	{"forever takes no argument", SCHEDULE("forever and ever"),
	"persistence.snapshotSchedule: \"forever and ever\" is not a schedule; expected forever, never, recurs N, every N or spaced INTERVAL"},
	{"every 0", SCHEDULE("every 0"),
	"persistence.snapshotSchedule: \"every 0\" is not a schedule; N must be a positive integer"},
	{"every 00", SCHEDULE("every 00"),
	"persistence.snapshotSchedule: \"every 00\" is not a schedule; N must be a positive integer"},
	{"recurs without N", SCHEDULE("recurs"),
	"persistence.snapshotSchedule: \"recurs\" is not a schedule; N must be an integer, 0 or more"},
	{"recurs negative", SCHEDULE("recurs -1"),
	"persistence.snapshotSchedule: \"recurs -1\" is not a schedule; N must be an integer, 0 or more"},
	{"every with a sign", SCHEDULE("every +3"),
	"persistence.snapshotSchedule: \"every +3\" is not a schedule; N must be a positive integer"},
	{"every negative", SCHEDULE("every -1"),
	"persistence.snapshotSchedule: \"every -1\" is not a schedule; N must be a positive integer"},
	{"every with a fraction", SCHEDULE("every 1.5"),
	"persistence.snapshotSchedule: \"every 1.5\" is not a schedule; N must be a positive integer"},
	{"every with a second argument", SCHEDULE("every 10 x"),
	"persistence.snapshotSchedule: \"every 10 x\" is not a schedule; N must be a positive integer"},
	{"recurs N past int64", SCHEDULE("recurs 9223372036854775808"),
	"persistence.snapshotSchedule: \"recurs 9223372036854775808\" is not a schedule; N is out of range"},
	{"spaced with an unknown unit", SCHEDULE("spaced 2 fortnights"),
	"persistence.snapshotSchedule: \"fortnights\" is not a unit of time; " UNITS},
	{"spaced zero", SCHEDULE("spaced 0 s"),
	"persistence.snapshotSchedule: interval \"0 s\" must be positive"},
	{"spaced without an interval", SCHEDULE("spaced  "),
	"persistence.snapshotSchedule: \"spaced  \" is not a schedule; expected spaced INTERVAL, e.g. \"spaced 5 minutes\""},
	{"journalEvents must be a boolean", WITH_A("'persistence': {'journalEvents': 'yes'}"),
	"persistence.journalEvents: must be a boolean"},
	{"machineType must not be empty", WITH_A("'persistence': {'machineType': ''}"),
	"persistence.machineType: must not be empty"},
	{"machineType too long", WITH_A("'persistence': {'machineType': '" X64 "'}"),
	"persistence.machineType: must be at most 63 bytes"},
	{"adapter must be a string", WITH_A("'persistence': {'adapter': 1}"),
	"persistence.adapter: must be a string"},
	{"machineType must be a string", WITH_A("'persistence': {'machineType': 7}"),
	"persistence.machineType: must be a string"},
	{"unhandled must not be a number", WITH_A("'unhandled': 0"),
	"unhandled: must be \"error\" or \"ignore\""},
	{"events must not be a number", WITH_A("'events': 5"), "events: must be an object"},
	{"any must not be a number", WITH_A("'any': 3"), "any: must be an object"},
	{"a target must not be a number in a list", ONE_STATE("{'on': {'Go': [{'target': 1.5}]}}"),
	"states.A.on.Go[0].target: must be a string"},
	{"a timer's delay must not be a number", TIMER("{'delay': 1e3, 'event': {'_tag': 'Go'}}"),
	"states.A.after[0].delay: must be a string"},
	{"adapter must not be empty", WITH_A("'persistence': {'adapter': ''}"),
	"persistence.adapter: must not be empty"},

	/* keys with NUL characters, which json-c would silently cut */
	{"NUL in a state name",
		"{'initial': 'A', 'states': {'A': {}, 'A\\u0000B': {}}}",
	"definition: object keys must not contain NUL characters"},
	{"NUL in a key of a timer's event",
		TIMER("{'delay': '1s', 'event': {'_tag': 'Go', 'a\\u0000b': 1}}"),
	"definition: object keys must not contain NUL characters"},
};

/* ----------------------------------------------------------------
 * md_parse_interval
 * ----------------------------------------------------------------
 */

typedef struct IntervalCase
{
	const char *text;
	int64_t		us;
	const char *error;
} IntervalCase;

#define NOT_AN_INTERVAL(t) \
	"\"" t "\" is not an interval; expected a number and a unit, e.g. \"30 minutes\""

static const IntervalCase interval_cases[] = {
	{"30 minutes", INT64_C(1800000000), NULL},
	{"1 hour 30 minutes", INT64_C(5400000000), NULL},
	{"1.5 hours", INT64_C(5400000000), NULL},
	{"10s", 10000000, NULL},
	{"10 S", 10000000, NULL},
	{"250ms", 250000, NULL},
	{"250 MilliSeconds", 250000, NULL},
	{"1us", 1, NULL},
	{"7 microseconds", 7, NULL},
	{"1 microsecond", 1, NULL},
	{"1 second", 1000000, NULL},
	{"1 sec 2 secs", 3000000, NULL},
	{"1 min 2 mins 3 m", INT64_C(360000000), NULL},
	{"1 hr 2 hrs 3h", INT64_C(21600000000), NULL},
	{"1 day 2 days 3d", INT64_C(518400000000), NULL},
	{"1 week 2 weeks 3w", INT64_C(3628800000000), NULL},
	{"1d 2h 3m 4s", INT64_C(93784000000), NULL},
	{"  5 min  ", INT64_C(300000000), NULL},
	{"1\thour\n5\tminutes", INT64_C(3900000000), NULL},
	{"0.5 s", 500000, NULL},
	{"0.0000005 s", 1, NULL},
	{"1.0000004 s", 1000000, NULL},
	{"1.9999999 s", 2000000, NULL},
	{"1.25 us", 1, NULL},
	{"1.5 us", 2, NULL},
	{"0.333333333333333333333333333 minutes", 20000000, NULL},
	{"0007 s", 7000000, NULL},
	{"36525 days", INT64_C(3155760000000000), NULL},
	{"3155760000000000 us", INT64_C(3155760000000000), NULL},
	{"5217 weeks 6 days", INT64_C(3155760000000000), NULL},
	{"", 0, NOT_AN_INTERVAL("")},
	{"   ", 0, NOT_AN_INTERVAL("   ")},
	{"abc", 0, NOT_AN_INTERVAL("abc")},
	{"5 minutes and", 0, NOT_AN_INTERVAL("5 minutes and")},
	{".5 s", 0, NOT_AN_INTERVAL(".5 s")},
	{"1. s", 0, NOT_AN_INTERVAL("1. s")},
	{"+5 s", 0, NOT_AN_INTERVAL("+5 s")},
	{"-5 minutes", 0, "interval \"-5 minutes\" must be positive"},
	{"0 seconds", 0, "interval \"0 seconds\" must be positive"},
	{"0.0000004 s", 0, "interval \"0.0000004 s\" must be positive"},
	{"5 fortnights", 0, "\"fortnights\" is not a unit of time; " UNITS},
	{"1h30m", 0, "\"h30m\" is not a unit of time; " UNITS},
	{"3 months", 0, "months and years have no fixed length; use days, e.g. \"30 days\""},
	{"1 YEAR", 0, "months and years have no fixed length; use days, e.g. \"30 days\""},
	{"30", 0, "\"30\" has no unit of time; " UNITS},
	{"1 hour 30", 0, "\"30\" has no unit of time; " UNITS},
	{"1.5", 0, "\"1.5\" has no unit of time; " UNITS},
	{"9223372036854775808 us", 0, "interval \"9223372036854775808 us\" is out of range"},
	{"9223372036854775807 us 1 us", 0, "interval \"9223372036854775807 us 1 us\" is out of range"},
	{"106751992 days", 0, "interval \"106751992 days\" is out of range"},
	{"36525 days 1 us", 0, "interval \"36525 days 1 us\" is longer than 100 years (36525 days)"},
	{"3000000 days", 0, "interval \"3000000 days\" is longer than 100 years (36525 days)"},
	{"9223372036854775807 us", 0, "interval \"9223372036854775807 us\" is longer than 100 years (36525 days)"},
	{"106751991 days", 0, "interval \"106751991 days\" is longer than 100 years (36525 days)"},
	{"99999999999999999999999 s", 0, "interval \"99999999999999999999999 s\" is out of range"},
};

/* ----------------------------------------------------------------
 * Runners for the tables
 * ----------------------------------------------------------------
 */

static void
run_valid_case(const ValidCase *vc)
{
	char	   *json = dq(vc->json);
	char		err[1024];
	char		why[1024] = "";
	MachineDef *def;
	bool		ok;

	def = compile_exact(json, strlen(json), err, sizeof(err));
	if (def == NULL)
	{
		snprintf(why, sizeof(why), "compile failed: %.900s", err);
		ok = false;
	}
	else
		ok = check_invariants(def, why, sizeof(why)) &&
			vc->check(def, why, sizeof(why));
	report(ok, vc->description, why);
	md_free(def);
	free(json);
}

static void
run_error_case(const ErrorCase *ec)
{
	char	   *json = dq(ec->json);
	char		err[1024];
	char		why[2200] = "";
	char		description[300];
	MachineDef *def;
	bool		ok;

	memset(err, 'X', sizeof(err));
	def = compile_exact(json, strlen(json), err, sizeof(err));
	if (def != NULL)
	{
		snprintf(why, sizeof(why), "compiled, expected: %s", ec->error);
		ok = false;
		md_free(def);
	}
	else if (strcmp(err, ec->error) != 0)
	{
		snprintf(why, sizeof(why), "got:      %s\n# expected: %s", err, ec->error);
		ok = false;
	}
	else
		ok = true;
	snprintf(description, sizeof(description), "error: %s", ec->description);
	report(ok, description, why);
	free(json);
}

static void
run_interval_case(const IntervalCase *ic)
{
	char		err[512];
	char		why[1400] = "";
	char		description[300];
	int64_t		us = -42;
	bool		ok;
	bool		parsed;
	size_t		i;

	memset(err, 'X', sizeof(err));
	parsed = md_parse_interval(ic->text, &us, err, sizeof(err));
	if (ic->error == NULL)
	{
		ok = parsed && us == ic->us;
		if (!parsed)
			snprintf(why, sizeof(why), "failed: %s", err);
		else if (!ok)
			snprintf(why, sizeof(why), "got %lld, expected %lld",
					 (long long) us, (long long) ic->us);
	}
	else
	{
		ok = !parsed && strcmp(err, ic->error) == 0 && us == -42;
		if (parsed)
			snprintf(why, sizeof(why), "parsed as %lld", (long long) us);
		else if (!ok)
			snprintf(why, sizeof(why), "got:      %s\n# expected: %s", err, ic->error);
	}
	/* the description stays on one line */
	snprintf(description, sizeof(description), "interval \"%s\"", ic->text);
	for (i = 0; description[i] != '\0'; i++)
	{
		if (description[i] == '\n' || description[i] == '\t')
			description[i] = ' ';
	}
	report(ok, description, why);
}

/* ----------------------------------------------------------------
 * Generated and hostile input
 * ----------------------------------------------------------------
 */

/* 5000 states in a chain, written in reverse order */
static void
test_many_states(void)
{
	Buf			b = {NULL, 0, 0};
	char		err[1024];
	char		why[1024] = "";
	char		name[32];
	MachineDef *def;
	bool		ok = true;
	int			i;

	buf_add(&b, "{\"initial\": \"S0000\", \"states\": {");
	for (i = 4999; i >= 0; i--)
	{
		char		tmp[256];

		if (i == 4999)
			snprintf(tmp, sizeof(tmp),
					 "\"S4999\": {\"final\": true, \"entry\": [\"common\"]}");
		else
			snprintf(tmp, sizeof(tmp),
					 ", \"S%04d\": {\"on\": {\"Next\": \"S%04d\"}, \"entry\": [\"fn_%d\", \"common\"]}",
					 i, i + 1, i);
		buf_add(&b, tmp);
	}
	buf_add(&b, "}}");

	def = compile_exact(b.data, b.len, err, sizeof(err));
	if (def == NULL)
	{
		snprintf(why, sizeof(why), "compile failed: %.900s", err);
		ok = false;
	}
	else if (!check_invariants(def, why, sizeof(why)))
		ok = false;
	else
	{
		if (def->nstates != 5000 || def->initial != 0 || def->nfunctions != 5000)
		{
			snprintf(why, sizeof(why), "nstates %d initial %d nfunctions %d",
					 def->nstates, def->initial, def->nfunctions);
			ok = false;
		}
		/* walk order: S4999 first, so "common" comes first, then fn_4998 ... */
		if (ok && (strcmp(def->functions[0].name, "common") != 0 ||
				   strcmp(def->functions[0].path, "states.S4999.entry[0]") != 0 ||
				   strcmp(def->functions[1].name, "fn_4998") != 0))
		{
			snprintf(why, sizeof(why), "function order: %s %s %s",
					 def->functions[0].name, def->functions[0].path,
					 def->functions[1].name);
			ok = false;
		}
		for (i = 0; ok && i < 4999; i++)
		{
			snprintf(name, sizeof(name), "S%04d", i);
			if (strcmp(def->states[i].name, name) != 0 ||
				def->states[i].nrules != 1 ||
				def->states[i].rules[0].transitions[0].target != i + 1 ||
				def->states[i].nentry != 2 ||
				def->states[i].entry[1] != 0)
			{
				snprintf(why, sizeof(why), "state %d (%s) is wrong", i,
						 def->states[i].name);
				ok = false;
			}
		}
	}
	report(ok, "5000 states compile, sorted and resolved", why);
	md_free(def);
	free(b.data);
}

/* 5000 states with timers; the last one refers to a missing state */
static void
test_many_states_error(void)
{
	Buf			b = {NULL, 0, 0};
	char		err[1024];
	char		why[2048] = "";
	MachineDef *def;
	int			i;
	bool		ok;
	const char *expected = "states.S4000.on.Next.target: \"S9999\" is not a state";

	buf_add(&b, "{\"initial\": \"S0000\", \"states\": {");
	for (i = 0; i < 5000; i++)
	{
		char		tmp[256];

		snprintf(tmp, sizeof(tmp),
				 "%s\"S%04d\": {\"on\": {\"Next\": \"S%04d\"}, \"after\": [{\"delay\": \"%d s\", \"event\": {\"_tag\": \"Next\"}}]}",
				 i > 0 ? ", " : "", i, i == 4000 ? 9999 : (i + 1) % 5000, i + 1);
		buf_add(&b, tmp);
	}
	buf_add(&b, "}}");
	def = compile_exact(b.data, b.len, err, sizeof(err));
	ok = def == NULL && strcmp(err, expected) == 0;
	if (!ok)
		snprintf(why, sizeof(why), "got: %s", def ? "a definition" : err);
	report(ok, "5000 states with timers: the bad target is found", why);
	md_free(def);

	/* and without the bad target, everything compiles */
	b.data[0] = '\0';
	b.len = 0;
	buf_add(&b, "{\"initial\": \"S0000\", \"states\": {");
	for (i = 0; i < 5000; i++)
	{
		char		tmp[256];

		snprintf(tmp, sizeof(tmp),
				 "%s\"S%04d\": {\"on\": {\"Next\": \"S%04d\"}, \"after\": [{\"delay\": \"%d s\", \"event\": {\"_tag\": \"Next\"}}]}",
				 i > 0 ? ", " : "", i, (i + 1) % 5000, i + 1);
		buf_add(&b, tmp);
	}
	buf_add(&b, "}}");
	why[0] = '\0';
	def = compile_exact(b.data, b.len, err, sizeof(err));
	ok = def != NULL && check_invariants(def, why, sizeof(why)) &&
		def->needs_worker && def->states[4999].ntimers == 1 &&
		def->states[4999].timers[0].delay_us == INT64_C(5000000000);
	if (def == NULL)
		snprintf(why, sizeof(why), "compile failed: %.900s", err);
	report(ok, "5000 states with timers compile", why);
	md_free(def);
	free(b.data);
}

static void
test_deep_nesting(void)
{
	size_t		n = 100000;
	char	   *text = xmalloc(2 * n);
	char		err[256];
	MachineDef *def;
	Buf			b = {NULL, 0, 0};
	int			i;
	bool		ok;

	memset(text, '[', n);
	memset(text + n, ']', n);
	def = compile_exact(text, 2 * n, err, sizeof(err));
	ok = def == NULL &&
		strcmp(err, "definition: invalid JSON: nesting too deep") == 0;
	report(ok, "100000 nested arrays are refused", ok ? NULL : err);
	md_free(def);
	memset(text, '{', n);
	def = compile_exact(text, n, err, sizeof(err));
	ok = def == NULL &&
		strcmp(err, "definition: invalid JSON: quoted object property name expected") == 0;
	report(ok, "100000 open braces are refused", ok ? NULL : err);
	md_free(def);
	free(text);

	/* objects nested in a place the compiler walks: the tokener stops first */
	for (i = 0; i < 100000; i++)
		buf_add(&b, "{\"a\":");
	def = compile_exact(b.data, b.len, err, sizeof(err));
	ok = def == NULL &&
		strcmp(err, "definition: invalid JSON: nesting too deep") == 0;
	report(ok, "100000 nested objects are refused", ok ? NULL : err);
	md_free(def);
	b.len = 0;

	/* a timer's event nested to the limit is fine, one more is not */
	for (i = 0; i < 2; i++)
	{
		int			depth = i == 0 ? 58 : 59;
		int			j;

		b.len = 0;
		buf_add(&b, "{\"initial\": \"A\", \"states\": {\"A\": {\"on\": {\"Go\": \"A\"},"
				" \"after\": [{\"delay\": \"1s\", \"event\": {\"_tag\": \"Go\", \"x\": ");
		for (j = 0; j < depth; j++)
			buf_add(&b, "[");
		for (j = 0; j < depth; j++)
			buf_add(&b, "]");
		buf_add(&b, "}}]}}}");
		def = compile_exact(b.data, b.len, err, sizeof(err));
		if (i == 0)
		{
			ok = def != NULL && strncmp(def->states[0].timers[0].event,
										"{\"_tag\":\"Go\",\"x\":[[[", 20) == 0;
			report(ok, "a timer's event nested 64 deep is fine", ok ? NULL : err);
		}
		else
		{
			ok = def == NULL &&
				strcmp(err, "definition: invalid JSON: nesting too deep") == 0;
			report(ok, "a timer's event nested 65 deep is refused", ok ? NULL : err);
		}
		md_free(def);
	}
	free(b.data);
}

static void
test_big_arrays(void)
{
	Buf			b = {NULL, 0, 0};
	char		err[1024];
	char		why[1024] = "";
	MachineDef *def;
	int			i;
	bool		ok;

	/* 200000 uses of one effect */
	buf_add(&b, "{\"initial\": \"A\", \"states\": {\"A\": {\"entry\": [\"f\"");
	for (i = 1; i < 200000; i++)
		buf_add(&b, ", \"f\"");
	buf_add(&b, "]}}}");
	def = compile_exact(b.data, b.len, err, sizeof(err));
	ok = def != NULL && def->nfunctions == 1 && def->states[0].nentry == 200000 &&
		def->states[0].entry[199999] == 0;
	report(ok, "200000 uses of one function make one entry", ok ? NULL : err);
	md_free(def);

	/* 30000 distinct functions */
	b.len = 0;
	buf_add(&b, "{\"initial\": \"A\", \"states\": {\"A\": {\"exit\": [\"f0\"");
	for (i = 1; i < 30000; i++)
		buf_addf(&b, ", \"f%d\"", i);
	buf_add(&b, "]}}}");
	def = compile_exact(b.data, b.len, err, sizeof(err));
	ok = def != NULL && def->nfunctions == 30000 && check_invariants(def, why, sizeof(why));
	for (i = 0; ok && i < 30000; i++)
	{
		char		name[32];

		snprintf(name, sizeof(name), "f%d", i);
		ok = strcmp(def->functions[i].name, name) == 0 &&
			def->states[0].exit[i] == i;
	}
	if (def == NULL)
		snprintf(why, sizeof(why), "%s", err);
	report(ok, "30000 distinct functions in first-use order", why);
	md_free(def);

	/* 100000 candidates */
	b.len = 0;
	buf_add(&b, "{\"initial\": \"A\", \"states\": {\"A\": {\"on\": {\"Go\": [\"A\"");
	for (i = 1; i < 100000; i++)
		buf_add(&b, i % 2 ? ", {\"target\": \"A\", \"guard\": \"g\"}" : ", \"A\"");
	buf_add(&b, "]}}}}");
	def = compile_exact(b.data, b.len, err, sizeof(err));
	ok = def != NULL && def->states[0].rules[0].ntransitions == 100000 &&
		def->nfunctions == 1 && def->states[0].rules[0].transitions[99999].guard == 0;
	report(ok, "100000 candidates for one event", ok ? NULL : err);
	md_free(def);

	/* 10000 "any" rules and 10000 event schemas, written in reverse order */
	b.len = 0;
	buf_add(&b, "{\"initial\": \"A\", \"states\": {\"A\": {}, \"F\": {\"final\": true}}, \"any\": {");
	for (i = 9999; i >= 0; i--)
		buf_addf(&b, i == 9999 ? "\"E%05d\": \"A\"" : ", \"E%05d\": \"A\"", i);
	buf_add(&b, "}, \"events\": {");
	for (i = 9999; i >= 0; i--)
		buf_addf(&b, i == 9999 ? "\"E%05d\": {\"f\": \"any\"}" : ", \"E%05d\": {\"f\": \"any\"}", i);
	buf_add(&b, "}}");
	why[0] = '\0';
	def = compile_exact(b.data, b.len, err, sizeof(err));
	ok = def != NULL && def->nany == 10000 && def->nevents == 10000 &&
		check_invariants(def, why, sizeof(why));
	for (i = 0; ok && i < 10000; i += 7)
	{
		char		tag[32];

		snprintf(tag, sizeof(tag), "E%05d", i);
		ok = md_state_rule(def, md_find_state(def, "A"), tag) == &def->any[i] &&
			md_state_rule(def, md_find_state(def, "F"), tag) == NULL &&
			md_find_event_schema(def, tag) == &def->events[i];
		if (!ok)
			snprintf(why, sizeof(why), "lookup of %s", tag);
	}
	if (def == NULL)
		snprintf(why, sizeof(why), "%s", err);
	report(ok, "10000 any rules and 10000 event schemas, sorted and found", why);
	md_free(def);

	/* 100000 numbers where strings are expected */
	b.len = 0;
	buf_add(&b, "{\"initial\": \"A\", \"states\": {\"A\": {\"entry\": [1");
	for (i = 1; i < 100000; i++)
		buf_add(&b, ", 1");
	buf_add(&b, "]}}}");
	def = compile_exact(b.data, b.len, err, sizeof(err));
	ok = def == NULL && strcmp(err, "states.A.entry[0]: must be a string") == 0;
	report(ok, "100000 numbers where function names are expected", ok ? NULL : err);
	md_free(def);
	free(b.data);
}

static void
test_nul_bytes(void)
{
	const char text[] = "{\"initial\": \"A\", \"states\": {\"A\": {}}}";
	char		err[256];
	MachineDef *def;
	bool		ok;

	/* the terminator passed as part of the text */
	def = compile_exact(text, sizeof(text), err, sizeof(err));
	ok = def == NULL &&
		strcmp(err, "definition: invalid JSON: unexpected NUL byte") == 0;
	report(ok, "a NUL byte after the value is refused", ok ? NULL : err);
	md_free(def);

	/* a NUL byte inside a string */
	{
		char		bad[] = "{\"initial\": \"A?\", \"states\": {\"A\": {}}}";

		bad[14] = '\0';
		def = compile_exact(bad, sizeof(bad) - 1, err, sizeof(err));
		ok = def == NULL && strncmp(err, "definition: invalid JSON: ", 26) == 0;
		report(ok, "a NUL byte inside a string is refused", ok ? NULL : err);
		md_free(def);
	}

	/* the text without its closing brace, not terminated */
	def = compile_exact(text, sizeof(text) - 2, err, sizeof(err));
	ok = def == NULL &&
		strcmp(err, "definition: invalid JSON: unexpected end of data") == 0;
	report(ok, "a text cut short is refused", ok ? NULL : err);
	md_free(def);
}

/* The message is cut to the buffer, always terminated, never overrun */
static void
test_errbuf(void)
{
	const char *json = "{\"initial\": \"B\", \"states\": {\"A\": {}}}";
	const char *full = "initial: \"B\" is not a state";
	char		err[64];
	size_t		size;
	bool		ok = true;
	char		why[256] = "";

	/*
	 * Whole when it fits; cut when the room left after the path is tiny;
	 * otherwise the problem keeps its beginning and its end around "..."
	 */
	for (size = 1; size < sizeof(err) && ok; size++)
	{
		MachineDef *def;
		size_t		expected = size - 1 < strlen(full) ? size - 1 : strlen(full);
		bool		elided = size - 1 < strlen(full) && size - 1 >= strlen("initial: ") + 16;

		memset(err, 'X', sizeof(err));
		def = compile_exact(json, strlen(json), err, size);
		if (def != NULL ||
			(elided ? strlen(err) > expected : strlen(err) != expected) ||
			(size < sizeof(err) && err[size] != 'X') ||
			(elided ? strncmp(err, "initial: \"B\" is", 15) != 0 ||
			 strstr(err, "...") == NULL ||
			 strcmp(err + strlen(err) - 5, "state") != 0 :
			 strncmp(err, full, expected) != 0))
		{
			snprintf(why, sizeof(why), "size %zu: \"%s\"", size, err);
			ok = false;
		}
		md_free(def);
	}
	report(ok, "the message fits the buffer and keeps its reason's end", why);

	ok = md_compile(json, strlen(json), NULL, 0) == NULL;
	ok = ok && md_compile(json, strlen(json), err, 0) == NULL;
	report(ok, "a NULL or empty buffer gets no message", NULL);

	/* A cut never leaves half a UTF-8 character */
	{
		const char *utf = "{\"initial\": \"\xc3\xa9\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", \"states\": {\"A\": {}}}";
		bool		valid = true;

		for (size = 1; size < 40; size++)
		{
			MachineDef *def = compile_exact(utf, strlen(utf), err, size);
			size_t		i = 0;
			size_t		len = strlen(err);

			md_free(def);
			/* every sequence in err must be complete */
			while (i < len)
			{
				unsigned char c = (unsigned char) err[i];
				size_t		need = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;

				if (i + need > len)
				{
					valid = false;
					snprintf(why, sizeof(why), "size %zu cuts a character", size);
					break;
				}
				i += need;
			}
		}
		report(valid, "a cut message stays valid UTF-8", why);
	}

	/*
	 * A cut inside the path, in the middle of a character: nothing may
	 * follow the dropped character (found by the fuzzer: the ": " and the
	 * problem used to be appended after it, so that the message named a
	 * key that does not exist).
	 */
	{
		const char *json = "{\"initial\": \"A\", \"persistence\": {\"snap\xf0\x9f\x98\x80shot\": 1},"
			" \"states\": {\"A\": {}}}";
		const char *whole = "persistence.snap\xf0\x9f\x98\x80shot: unknown key";
		bool		prefix = true;

		why[0] = '\0';
		for (size = 1; size <= strlen(whole) + 1 && prefix; size++)
		{
			MachineDef *def = compile_exact(json, strlen(json), err, size);
			size_t		len = strlen(err);
			size_t		want = size - 1 < strlen(whole) ? size - 1 : strlen(whole);

			md_free(def);
			if (def != NULL || strncmp(err, whole, len) != 0 ||
				len > want || len + 3 < want)
			{
				snprintf(why, sizeof(why), "size %zu: \"%s\"", size, err);
				prefix = false;
			}
		}
		report(prefix, "a message cut inside a path is a prefix of the whole", why);
	}

	/* the same at the server's buffer size, with a long name */
	{
		Buf			b = {NULL, 0, 0};
		char		big[512];
		MachineDef *def;
		size_t		i;
		bool		ok2;

		buf_add(&b, "{\"initial\": \"A\", \"states\": {\"A\": {}, \"x");
		for (i = 0; i < 300; i++)
			buf_add(&b, "\xc3\xa9");
		buf_add(&b, "\": {}}}");
		def = compile_exact(b.data, b.len, big, sizeof(big));
		/* "states.x", 31 whole characters (63 bytes) and "...", then the reason */
		ok2 = def == NULL &&
			strcmp(big, "") != 0 &&
			strncmp(big, "states.x\xc3\xa9", 10) == 0 &&
			strncmp(big + 8 + 62, "...: ", 5) == 0 &&
			strcmp(big + 8 + 62 + 5, "a state name must be at most 63 bytes") == 0;
		report(ok2, "a long UTF-8 name keeps the message's reason", big);
		md_free(def);
		free(b.data);
	}
}

static void
test_null_arguments(void)
{
	char		err[128];
	int64_t		us = 0;
	bool		ok;

	ok = md_compile(NULL, 0, err, sizeof(err)) == NULL &&
		strcmp(err, "definition: invalid JSON: unexpected end of data") == 0;
	report(ok, "a NULL text is refused", err);

	ok = !md_parse_interval("5 parsecs", &us, NULL, 0) &&
		!md_parse_interval(NULL, &us, err, sizeof(err)) &&
		md_parse_interval("5 s", &us, NULL, 0) && us == 5000000;
	report(ok, "md_parse_interval with NULL arguments", NULL);

	md_free(NULL);
	report(true, "md_free(NULL) does nothing", NULL);
}

/* Every prefix and many one-byte changes of a rich definition: no crash */
static void
test_mutations(void)
{
	char	   *json = dq(ORDER_EXAMPLE);
	size_t		len = strlen(json);
	char		err[1024];
	char		why[1024] = "";
	size_t		i;
	bool		ok = true;
	int			compiled = 0;
	static const char replacements[] = {'"', '{', '}', '[', ']', ',', ':', '0',
	'\\', ' ', 'x', '$', '\0', (char) 0xff};

	for (i = 0; i < len && ok; i++)
	{
		MachineDef *def = compile_exact(json, i, err, sizeof(err));

		if (def != NULL || err[0] == '\0')
		{
			snprintf(why, sizeof(why), "prefix of %zu bytes: %s", i,
					 def ? "compiled" : "no message");
			ok = false;
		}
		md_free(def);
	}
	report(ok, "every prefix of the order example is refused with a message", why);

	for (i = 0; i < len && ok; i++)
	{
		size_t		r;

		for (r = 0; r < sizeof(replacements) && ok; r++)
		{
			char		saved = json[i];
			MachineDef *def;

			json[i] = replacements[r];
			def = compile_exact(json, len, err, sizeof(err));
			json[i] = saved;
			if (def != NULL)
			{
				compiled++;
				ok = check_invariants(def, why, sizeof(why));
			}
			else if (err[0] == '\0' || strstr(err, ": ") == NULL)
			{
				snprintf(why, sizeof(why), "byte %zu: bad message \"%.900s\"", i, err);
				ok = false;
			}
			md_free(def);
		}
	}
	if (ok && compiled == 0)
	{
		snprintf(why, sizeof(why), "no mutation compiled");
		ok = false;
	}
	report(ok, "one-byte changes of the order example: a definition or a message", why);
	free(json);
}

/* Every allocation of a compile failing in turn */
static void
test_out_of_memory(void)
{
	char	   *json = dq(ORDER_EXAMPLE);
	char		err[256];
	char		why[512] = "";
	long		k;
	bool		ok = true;
	bool		done = false;

	for (k = 0; k < 10000 && ok && !done; k++)
	{
		MachineDef *def;

		live_allocations = 0;
		fail_countdown = k;
		def = md_compile(json, strlen(json), err, sizeof(err));
		if (fail_countdown >= 0)
		{
			/* fewer than k + 1 allocations: it must have compiled */
			done = true;
			fail_countdown = -1;
			if (def == NULL)
			{
				snprintf(why, sizeof(why), "no failure injected, yet: %s", err);
				ok = false;
			}
		}
		else if (def != NULL)
		{
			snprintf(why, sizeof(why), "allocation %ld failed, yet it compiled", k);
			ok = false;
		}
		else if (strcmp(err, "definition: out of memory") != 0)
		{
			snprintf(why, sizeof(why), "allocation %ld: \"%s\"", k, err);
			ok = false;
		}
		else if (live_allocations != 0)
		{
			snprintf(why, sizeof(why), "allocation %ld: %ld chunks leaked", k,
					 live_allocations);
			ok = false;
		}
		md_free(def);
		if (def != NULL && live_allocations != 0)
		{
			snprintf(why, sizeof(why), "md_free left %ld chunks", live_allocations);
			ok = false;
		}
	}
	if (ok && !done)
	{
		snprintf(why, sizeof(why), "never finished");
		ok = false;
	}
	report(ok, "each allocation failing in turn: out of memory, nothing leaked", why);
	free(json);

	/* the same with a definition big enough to need several chunks */
	{
		Buf			b = {NULL, 0, 0};
		int			i;

		buf_add(&b, "{\"initial\": \"S0\", \"states\": {\"S0\": {}");
		for (i = 1; i < 300; i++)
			buf_addf(&b, ", \"S%d\": {\"on\": {\"Go\": {\"target\": \"S0\", \"guard\": \"g%d\"}}, \"entry\": [\"e%d\"]}", i);
		buf_add(&b, "}}");
		ok = true;
		done = false;
		for (k = 0; k < 10000 && ok && !done; k++)
		{
			MachineDef *def;

			live_allocations = 0;
			fail_countdown = k;
			def = md_compile(b.data, b.len, err, sizeof(err));
			if (fail_countdown >= 0)
			{
				done = true;
				fail_countdown = -1;
				ok = def != NULL && def->nfunctions == 598;
			}
			else
				ok = def == NULL && live_allocations == 0 &&
					strcmp(err, "definition: out of memory") == 0;
			if (!ok)
				snprintf(why, sizeof(why), "allocation %ld: %s", k, err);
			md_free(def);
			ok = ok && live_allocations == 0;
		}
		ok = ok && done && k > 4;
		report(ok, "the same for a definition of several chunks", why);
		free(b.data);
	}
}

int
main(void)
{
	size_t		i;

	for (i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
		run_valid_case(&valid_cases[i]);
	for (i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++)
		run_error_case(&error_cases[i]);
	for (i = 0; i < sizeof(interval_cases) / sizeof(interval_cases[0]); i++)
		run_interval_case(&interval_cases[i]);

	test_many_states();
	test_many_states_error();
	test_deep_nesting();
	test_big_arrays();
	test_nul_bytes();
	test_errbuf();
	test_null_arguments();
	test_mutations();
	test_out_of_memory();

	printf("1..%d\n", ntests);
	if (live_allocations != 0)
	{
		printf("# %ld allocations were never freed\n", live_allocations);
		return 1;
	}
	return nfailed > 0 ? 1 : 0;
}
