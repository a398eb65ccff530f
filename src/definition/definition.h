/*-------------------------------------------------------------------------
 *
 * definition.h
 *	  A machine definition compiled from its JSON text.
 *
 * The compiler depends on json-c and libc only, never on server headers, so
 * it can be unit-tested and fuzzed on its own.  A compiled definition is one
 * malloc'd arena: md_free() releases all of it, and md_compile() never leaks,
 * whatever its input.
 *
 * States, "on" rules, "any" rules and event schemas are kept sorted by name
 * so that lookups are binary searches; every cross reference (a transition's
 * target, a function) is an index, resolved once here.
 *
 * Function names are collected into one table of distinct (name, kind) pairs;
 * the server resolves each to an OID once per definition.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_DEFINITION_H
#define MACHINE_DEFINITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a named SQL function is used as; fixes the signature it must have */
typedef enum MdFunctionKind
{
	MD_FN_GUARD,				/* (state jsonb, event jsonb) RETURNS boolean */
	MD_FN_HANDLER,				/* (state jsonb, event jsonb) RETURNS jsonb */
	MD_FN_EFFECT,				/* (actor_id text, state jsonb, event jsonb)
								 * RETURNS void */
	MD_FN_ENTITY_INIT,			/* (entity_id text) RETURNS jsonb */
	MD_FN_MIGRATE,				/* (state jsonb, from_revision integer)
								 * RETURNS jsonb */
	MD_FN_UPCAST				/* (event jsonb, revision integer) RETURNS
								 * jsonb */
} MdFunctionKind;

typedef struct MdFunction
{
	const char *name;			/* as written, e.g. "shop.can_pay" */
	MdFunctionKind kind;
	const char *path;			/* JSON path of its first use */
} MdFunction;

typedef struct MdTransition
{
	int			target;			/* state index, or -1: the handler's result
								 * names the state */
	int			guard;			/* function index, or -1 */
	int			handler;		/* function index, or -1 */
	bool		merge;			/* copy the event's fields into the state */
	bool		reenter;		/* a self-transition runs exit and entry */
} MdTransition;

/* The candidates for one event tag, in "on" or "any", tried in order */
typedef struct MdRule
{
	const char *event;
	int			ntransitions;	/* >= 1 */
	MdTransition *transitions;
} MdRule;

typedef struct MdTimer
{
	int64_t		delay_us;		/* > 0 */
	const char *delay;			/* as written, e.g. "30 minutes" */
	const char *event;			/* the event object as compact JSON text */
	const char *event_tag;
} MdTimer;

typedef struct MdState
{
	const char *name;
	bool		final;
	int			nrules;
	MdRule	   *rules;			/* "on", sorted by event */
	int			nentry;
	int		   *entry;			/* function indexes, in declared order */
	int			nexit;
	int		   *exit;
	int			ntimers;
	MdTimer    *timers;			/* "after", in declared order */
	int			npostpone;
	const char **postpone;		/* event tags kept for a later state, sorted */
} MdState;

typedef enum MdFieldType
{
	MD_FIELD_STRING,
	MD_FIELD_NUMBER,
	MD_FIELD_BOOLEAN,
	MD_FIELD_OBJECT,
	MD_FIELD_ARRAY,
	MD_FIELD_ANY
} MdFieldType;

/*
 * A field type's name as "events" writes it ("string"), and as messages say
 * it, with its article ("a string"); one table for the compiler and the
 * server, which checks events against the schemas.
 */
extern const char *md_field_type_name(MdFieldType type);
extern const char *md_field_type_article(MdFieldType type);

typedef struct MdField
{
	const char *name;
	MdFieldType type;
	bool		optional;		/* written with a trailing '?' */
} MdField;

typedef struct MdEventSchema
{
	const char *event;
	int			nfields;
	MdField    *fields;			/* sorted by name */
} MdEventSchema;

typedef enum MdSchedule
{
	MD_SNAPSHOT_NEVER,
	MD_SNAPSHOT_FOREVER,
	MD_SNAPSHOT_RECURS,			/* versions 1..n; none when n is 0 */
	MD_SNAPSHOT_EVERY,			/* versions that are multiples of n */
	MD_SNAPSHOT_SPACED			/* by the worker, spaced_us apart */
} MdSchedule;

typedef struct MdPersistence
{
	bool		enabled;		/* a "persistence" object was given */
	bool		journal_events; /* default true */
	MdSchedule	schedule;		/* default never */
	int64_t		n;				/* recurs N: >= 0; every N: >= 1 */
	int64_t		spaced_us;		/* spaced INTERVAL: > 0 */
	const char *schedule_text;	/* as written, NULL when omitted */
	const char *machine_type;	/* NULL: the machine's name */
	const char *adapter;		/* NULL: the built-in tables */
} MdPersistence;

typedef struct MachineDef
{
	int			initial;		/* state index */
	int			nstates;
	MdState    *states;			/* sorted by name */
	int			nany;
	MdRule	   *any;			/* sorted by event */
	int			nevents;
	MdEventSchema *events;		/* sorted by event */
	bool		unhandled_ignore;	/* "unhandled": "ignore" */
	const char *notify;			/* channel, or NULL */
	MdPersistence persistence;
	bool		entity;			/* an "entity" object was given */
	int			entity_init;	/* function index, or -1: the data is {} */
	int			migrate;		/* "migrate": function index, or -1 */
	int			upcast;			/* "upcast": function index, or -1 */
	int			nfunctions;
	MdFunction *functions;		/* distinct (name, kind), first use first */
	bool		needs_worker;	/* has "after" timers or a spaced schedule */
	bool		postpones;		/* some state postpones events */
	struct MdArena *arena;		/* owns everything above */
} MachineDef;

/* Longest accepted name (state, event, field, function, channel) in bytes */
#define MD_MAX_NAME_LEN 63

/*
 * Longest accepted interval (a timer's delay, a snapshot spacing): 100
 * years of 365.25 days, far from where a timestamp plus or minus it leaves
 * PostgreSQL's range.
 */
#define MD_MAX_INTERVAL_US INT64_C(3155760000000000)
#define MD_MAX_INTERVAL_TEXT "36525 days"

/*
 * Compile the JSON text of a definition.  On success returns the definition,
 * to be released with md_free().  On failure returns NULL and writes
 * "<json path>: <problem>" into errbuf, for example
 * 'states.Paid.on.Ship.target: "Shiped" is not a state'.
 */
extern MachineDef *md_compile(const char *json, size_t len,
							  char *errbuf, size_t errlen);
extern void md_free(MachineDef *def);

/* Lookups: index or NULL/-1 when absent */
extern int	md_find_state(const MachineDef *def, const char *name);
extern const MdRule *md_find_rule(const MdRule *rules, int nrules,
								  const char *event);
extern const MdEventSchema *md_find_event_schema(const MachineDef *def,
												 const char *event);

/* Does the state postpone the event (keep it for a later state)? */
extern bool md_state_postpones(const MachineDef *def, int state,
							   const char *event);

/*
 * The rule a state applies to an event: its own "on" rule, else the "any"
 * rule (final states accept nothing, and a state takes no rule for an
 * event it postpones).  NULL when the event is not handled.
 */
extern const MdRule *md_state_rule(const MachineDef *def, int state,
								   const char *event);

/*
 * Parse an interval such as "30 minutes", "1 hour 30 minutes", "1.5 hours",
 * "10s" into microseconds.  Units: microsecond(s)/us, millisecond(s)/ms,
 * second(s)/sec(s)/s, minute(s)/min(s)/m, hour(s)/hr(s)/h, day(s)/d,
 * week(s)/w.  Returns false (with a reason in errbuf) for anything else,
 * for a total that is not positive, and on overflow.
 */
extern bool md_parse_interval(const char *text, int64_t *us,
							  char *errbuf, size_t errlen);

#endif							/* MACHINE_DEFINITION_H */
