/*-------------------------------------------------------------------------
 *
 * definition.c
 *	  Compile the JSON text of a machine definition into the
 *	  indexed form declared in definition.h: the walk over the grammar, the
 *	  checks that need the whole definition, md_compile() and the lookups.
 *
 * The compiler uses libc and json-c only, never server headers, so that
 * test/unit can exercise it, and test/fuzz can hammer it, outside
 * PostgreSQL.  Everything here must survive hostile input: deep nesting is
 * cut off by the tokener's depth limit, every size is checked before it is
 * multiplied, and no recursion follows the input except along the bounded
 * tokener depth.
 *
 * The compiler works in four steps:
 *
 * 1. Parse with a strict json-c tokener of bounded depth.  The tree is always
 *	  released before md_compile() returns.
 * 2. Collect and sort the state names, so that the walk can resolve every
 *	  transition target to its final index while it still knows the JSON
 *	  path to name in an error message.
 * 3. Walk the tree, visiting object members in json-c's (insertion) order.
 *	  The server hands us the canonical text of a jsonb value, so the first
 *	  problem reported and the order of the function table are stable for a
 *	  given definition.  Function names are collected as they are met into a
 *	  table of distinct (name, kind) pairs.  Each object whose keys the
 *	  grammar fixes (the root, a state, a transition, a timer, "persistence",
 *	  "entity") is a table of its members, walked by md_compile_members().
 * 4. Sort the rules, event schemas and fields, then check that every state
 *	  accepts its timers' events, which needs all rules known.
 *
 * The rest of the compiler lives next door (definition_internal.h lists the
 * pieces): the arenas in definition_arena.c, JSON paths and error messages
 * in definition_error.c, intervals and snapshot schedules in
 * definition_interval.c.  Nothing is global.
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "definition_internal.h"

/* Nesting deeper than this is refused by the tokener */
#define MD_JSON_DEPTH 64

/* Longest function name: a schema-qualified name */
#define MD_MAX_FUNCTION_LEN (2 * MD_MAX_NAME_LEN + 1)

/* The field types of "events", by MdFieldType */
#define MD_NFIELD_TYPES ((size_t) MD_FIELD_ANY + 1)
static const struct
{
	const char *name;			/* as written */
	const char *article;		/* as a message says it */
}			md_field_types[MD_NFIELD_TYPES] = {
	[MD_FIELD_STRING] = {"string", "a string"},
	[MD_FIELD_NUMBER] = {"number", "a number"},
	[MD_FIELD_BOOLEAN] = {"boolean", "a boolean"},
	[MD_FIELD_OBJECT] = {"object", "an object"},
	[MD_FIELD_ARRAY] = {"array", "an array"},
	[MD_FIELD_ANY] = {"any", "anything"},
};

const char *
md_field_type_name(MdFieldType type)
{
	return (size_t) type < MD_NFIELD_TYPES ? md_field_types[type].name : "?";
}

const char *
md_field_type_article(MdFieldType type)
{
	return (size_t) type < MD_NFIELD_TYPES ? md_field_types[type].article : "?";
}

/* ----------------------------------------------------------------
 * Leaf values
 * ----------------------------------------------------------------
 */

/* A JSON string without NUL characters */
bool
md_get_string(MdCompiler *c, const MdPath *at, json_object *value,
			  const char **s, size_t *len)
{
	int			n;

	if (!json_object_is_type(value, json_type_string))
		return md_fail(c, at, "must be a string");
	*s = json_object_get_string(value);
	n = json_object_get_string_len(value);
	if (*s == NULL || n < 0 || strlen(*s) != (size_t) n)
		return md_fail(c, at, "must not contain NUL characters");
	*len = (size_t) n;
	return true;
}

/*
 * A state name, event tag or field name ("what" says which, with its
 * article).  Names starting with "$" are reserved for the extension's own
 * entries ($init, $restore, $rewind) unless allow_dollar.
 */
static bool
md_check_name(MdCompiler *c, const MdPath *at, const char *name,
			  const char *what, bool allow_dollar)
{
	size_t		len = strlen(name);

	if (len == 0)
		return md_fail(c, at, "%s must not be empty", what);
	if (len > MD_MAX_NAME_LEN)
		return md_fail(c, at, "%s must be at most %d bytes", what,
					   MD_MAX_NAME_LEN);
	if (!allow_dollar && name[0] == '$')
		return md_fail(c, at,
					   "%s must not start with \"$\"; such names are reserved",
					   what);
	return true;
}

/*
 * Whether the text holds a \u0000 escape inside a string.  json-c cuts an
 * object key at such a character (so two keys could silently become one),
 * and by the time we see the tree it is too late to tell; strings that are
 * values are checked where they are used.
 */
static bool
md_text_has_nul_escape(const char *text, size_t len)
{
	size_t		i;
	char		quote = '\0';

	for (i = 0; i < len; i++)
	{
		char		ch = text[i];

		if (quote == '\0')
		{
			if (ch == '"' || ch == '\'')
				quote = ch;
		}
		else if (ch == '\\')
		{
			if (i + 5 < len && text[i + 1] == 'u' &&
				memcmp(text + i + 2, "0000", 4) == 0)
				return true;
			i++;				/* skip the escaped character */
		}
		else if (ch == quote)
			quote = '\0';
	}
	return false;
}

/* ----------------------------------------------------------------
 * Objects with fixed members
 * ----------------------------------------------------------------
 */

/* Is the value of the type (null fits only "any") */
static bool
md_field_fits(json_object *value, MdFieldType type)
{
	switch (type)
	{
		case MD_FIELD_STRING:
			return json_object_is_type(value, json_type_string);
		case MD_FIELD_NUMBER:
			return json_object_is_type(value, json_type_int) ||
				json_object_is_type(value, json_type_double);
		case MD_FIELD_BOOLEAN:
			return json_object_is_type(value, json_type_boolean);
		case MD_FIELD_OBJECT:
			return json_object_is_type(value, json_type_object);
		case MD_FIELD_ARRAY:
			return json_object_is_type(value, json_type_array);
		case MD_FIELD_ANY:
			return true;
	}
	return false;
}

/*
 * One member of an object whose keys the grammar fixes.  compile gets the
 * value, already of the member's type, and the field it fills in: the
 * object's target plus offset (the whole target when offset is 0), with
 * arg, the member's own parameter (a function's kind, a name's longest
 * length, exit rather than entry effects).
 */
typedef struct MdMember
{
	const char *name;
	MdFieldType type;			/* MD_FIELD_ANY: compile checks it */
	bool		required;
	bool		(*compile) (MdCompiler *c, const MdPath *at,
							json_object *value, void *field, int arg);
	size_t		offset;
	int			arg;
} MdMember;

#define MD_NMEMBERS(members) (sizeof(members) / sizeof((members)[0]))

/*
 * Compile an object with fixed keys into target: every key must be one of
 * members, of its type, and every required member present.
 */
static bool
md_compile_members(MdCompiler *c, const MdPath *at, json_object *obj,
				   const MdMember *members, size_t n, void *target)
{
	struct json_object_iterator it;
	struct json_object_iterator end;
	MdPath		frame;
	const MdMember *m;

	if (!json_object_is_type(obj, json_type_object))
		return md_fail(c, at, "must be an object");
	it = json_object_iter_begin(obj);
	end = json_object_iter_end(obj);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
	{
		const char *key = json_object_iter_peek_name(&it);
		json_object *value = json_object_iter_peek_value(&it);
		const MdPath *kp = md_key(&frame, at, key);

		for (m = members; m < members + n && strcmp(m->name, key) != 0; m++)
			;
		if (m == members + n)
			return md_fail(c, kp, "unknown key");
		if (!md_field_fits(value, m->type))
			return md_fail(c, kp, "must be %s",
						   md_field_type_article(m->type));
		if (!m->compile(c, kp, value, (char *) target + m->offset, m->arg))
			return false;
	}
	for (m = members; m < members + n; m++)
	{
		if (m->required && !json_object_object_get_ex(obj, m->name, NULL))
			return md_fail(c, md_key(&frame, at, m->name), "is required");
	}
	return true;
}

static bool
md_bool(MdCompiler *c, const MdPath *at, json_object *value,
		void *field, int arg)
{
	*(bool *) field = json_object_get_boolean(value) != 0;
	return true;
}

/* A string kept only in the definition's text, such as "description" */
static bool
md_text(MdCompiler *c, const MdPath *at, json_object *value,
		void *field, int arg)
{
	const char *s;
	size_t		len;

	return md_get_string(c, at, value, &s, &len);
}

/* A non-empty string of at most maxlen bytes, copied into the arena */
static bool
md_name(MdCompiler *c, const MdPath *at, json_object *value,
		void *field, int maxlen)
{
	const char *s;
	size_t		len;

	if (!md_get_string(c, at, value, &s, &len))
		return false;
	if (len == 0)
		return md_fail(c, at, "must not be empty");
	if (len > (size_t) maxlen)
		return md_fail(c, at, "must be at most %d bytes", maxlen);
	*(const char **) field = md_strndup(c, s, len);
	return *(const char **) field != NULL;
}

/* ----------------------------------------------------------------
 * References: states and functions
 * ----------------------------------------------------------------
 */

static uint32_t
md_hash(const char *s, MdFunctionKind kind)
{
	uint32_t	h = 2166136261u;

	for (; *s != '\0'; s++)
	{
		h ^= (unsigned char) *s;
		h *= 16777619u;
	}
	h ^= (uint32_t) kind;
	h *= 16777619u;
	return h;
}

/* Double the hash table of functions */
static bool
md_grow_slots(MdCompiler *c)
{
	size_t		nslots = c->nslots > 0 ? c->nslots * 2 : 64;
	MdFnSlot   *slots;
	size_t		i;

	if (nslots > SIZE_MAX / sizeof(MdFnSlot))
		return md_oom(c);
	slots = md_arena_alloc(c->scratch, nslots * sizeof(MdFnSlot));
	if (slots == NULL)
		return md_oom(c);
	for (i = 0; i < c->nslots; i++)
	{
		const MdFnSlot *old = &c->slots[i];
		size_t		j;

		if (old->name == NULL)
			continue;
		j = md_hash(old->name, old->kind) & (nslots - 1);
		while (slots[j].name != NULL)
			j = (j + 1) & (nslots - 1);
		slots[j] = *old;
	}
	c->slots = slots;
	c->nslots = nslots;
	return true;
}

/*
 * A function name used as a guard, handler or effect: its index in the table
 * of distinct (name, kind) pairs, added on first use with the path.
 */
static bool
md_function(MdCompiler *c, const MdPath *at, json_object *value,
			void *field, int arg)
{
	int		   *index = field;
	MdFunctionKind kind = (MdFunctionKind) arg;
	const char *name;
	size_t		len;
	size_t		i;
	bool		blank = true;
	MdFunction *fn;
	MdFunction *functions;

	if (!md_get_string(c, at, value, &name, &len))
		return false;
	for (i = 0; i < len && blank; i++)
		blank = md_isspace(name[i]);
	if (blank)
		return md_fail(c, at, "a function name must not be empty");
	if (len > MD_MAX_FUNCTION_LEN)
		return md_fail(c, at, "a function name must be at most %d bytes",
					   MD_MAX_FUNCTION_LEN);

	if ((size_t) c->nfunctions + 1 > c->nslots / 2 && !md_grow_slots(c))
		return false;
	i = md_hash(name, kind) & (c->nslots - 1);
	while (c->slots[i].name != NULL)
	{
		if (c->slots[i].kind == kind && strcmp(c->slots[i].name, name) == 0)
		{
			*index = c->slots[i].index;
			return true;
		}
		i = (i + 1) & (c->nslots - 1);
	}

	functions = md_grow(c, c->functions, c->nfunctions, &c->maxfunctions,
						sizeof(MdFunction));
	if (functions == NULL)
		return false;
	c->functions = functions;
	fn = &c->functions[c->nfunctions];
	fn->kind = kind;
	fn->name = md_strndup(c, name, len);
	if (fn->name == NULL)
		return false;
	fn->path = md_path_string(c, c->arena, at);
	if (fn->path == NULL)
		return false;
	c->slots[i].name = fn->name;
	c->slots[i].kind = kind;
	c->slots[i].index = c->nfunctions;
	*index = c->nfunctions++;
	return true;
}

/* A state name that must be declared, as its index */
static bool
md_target(MdCompiler *c, const MdPath *at, json_object *value,
		  void *field, int arg)
{
	int		   *index = field;
	const char *name;
	size_t		len;

	if (!md_get_string(c, at, value, &name, &len))
		return false;
	*index = md_find_state(c->def, name);
	if (*index < 0)
		return md_fail(c, at, "\"%s\" is not a state", name);
	return true;
}

/* ----------------------------------------------------------------
 * Transitions and rules ("on" and "any")
 * ----------------------------------------------------------------
 */

static const MdMember md_transition_members[] = {
	{"target", MD_FIELD_STRING, false, md_target,
		offsetof(MdTransition, target)},
	{"guard", MD_FIELD_STRING, false, md_function,
		offsetof(MdTransition, guard), MD_FN_GUARD},
	{"handler", MD_FIELD_STRING, false, md_function,
		offsetof(MdTransition, handler), MD_FN_HANDLER},
	{"merge", MD_FIELD_BOOLEAN, false, md_bool, offsetof(MdTransition, merge)},
	{"reenter", MD_FIELD_BOOLEAN, false, md_bool,
		offsetof(MdTransition, reenter)},
};

static bool
md_compile_transition(MdCompiler *c, const MdPath *at, json_object *obj,
					  MdTransition *t)
{
	MdPath		frame;

	if (!md_compile_members(c, at, obj, md_transition_members,
							MD_NMEMBERS(md_transition_members), t))
		return false;
	if (t->target < 0 && t->handler < 0)
		return md_fail(c, at, "needs a target or a handler");
	if (t->merge && t->handler >= 0)
		return md_fail(c, md_key(&frame, at, "merge"),
					   "cannot be combined with a handler; the handler returns the new data");
	return true;
}

/*
 * A candidate: a target state name or a transition object.  A bare name is
 * short for {"target": name}, and its errors name the path that way.
 */
static bool
md_compile_candidate(MdCompiler *c, const MdPath *at, json_object *value,
					 MdTransition *t)
{
	MdPath		frame;

	*t = (MdTransition) {.target = -1, .guard = -1, .handler = -1};
	if (json_object_is_type(value, json_type_string))
		return md_target(c, md_key(&frame, at, "target"), value, &t->target,
						 0);
	return md_compile_transition(c, at, value, t);
}

static bool
md_compile_rule(MdCompiler *c, const MdPath *at, json_object *value,
				MdRule *rule)
{
	size_t		n;
	size_t		i;
	MdPath		frame;

	if (json_object_is_type(value, json_type_string) ||
		json_object_is_type(value, json_type_object))
	{
		rule->transitions = md_alloc(c, 1, sizeof(MdTransition));
		if (rule->transitions == NULL)
			return false;
		rule->ntransitions = 1;
		return md_compile_candidate(c, at, value, &rule->transitions[0]);
	}
	if (!json_object_is_type(value, json_type_array))
		return md_fail(c, at,
					   "must be a state name, a transition object or an array of them");

	n = json_object_array_length(value);
	if (n == 0)
		return md_fail(c, at, "must not be an empty array");
	if (n > INT_MAX)
		return md_fail(c, at, "has too many elements");
	rule->transitions = md_alloc(c, n, sizeof(MdTransition));
	if (rule->transitions == NULL)
		return false;
	for (i = 0; i < n; i++)
	{
		json_object *elem = json_object_array_get_idx(value, i);
		const MdPath *ep = md_elem(&frame, at, i);

		if (!json_object_is_type(elem, json_type_string) &&
			!json_object_is_type(elem, json_type_object))
			return md_fail(c, ep, "must be a state name or a transition object");
		if (!md_compile_candidate(c, ep, elem, &rule->transitions[i]))
			return false;
		rule->ntransitions = (int) i + 1;
	}
	return true;
}

/* An "on" or "any" object: event tag -> candidates */
static bool
md_compile_rules(MdCompiler *c, const MdPath *at, json_object *obj,
				 MdRule **rules, int *nrules)
{
	struct json_object_iterator it;
	struct json_object_iterator end;
	MdPath		frame;

	*rules = md_alloc(c, (size_t) json_object_object_length(obj),
					  sizeof(MdRule));
	if (*rules == NULL)
		return false;
	*nrules = 0;

	it = json_object_iter_begin(obj);
	end = json_object_iter_end(obj);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
	{
		const char *key = json_object_iter_peek_name(&it);
		json_object *value = json_object_iter_peek_value(&it);
		const MdPath *kp = md_key(&frame, at, key);
		MdRule	   *rule = &(*rules)[*nrules];

		if (!md_check_name(c, kp, key, "an event tag", false))
			return false;
		rule->event = md_strdup(c, key);
		if (rule->event == NULL)
			return false;
		(*nrules)++;
		if (!md_compile_rule(c, kp, value, rule))
			return false;
	}
	return true;
}

/* "on" and "any", which fill in a count beside their array */
static bool
md_state_on(MdCompiler *c, const MdPath *at, json_object *value,
			void *st, int arg)
{
	return md_compile_rules(c, at, value, &((MdState *) st)->rules,
							&((MdState *) st)->nrules);
}

static bool
md_root_any(MdCompiler *c, const MdPath *at, json_object *value,
			void *def, int arg)
{
	return md_compile_rules(c, at, value, &((MachineDef *) def)->any,
							&((MachineDef *) def)->nany);
}

/* ----------------------------------------------------------------
 * States
 * ----------------------------------------------------------------
 */

/* "entry" and "exit" (when exits): arrays of effect function names */
static bool
md_compile_effects(MdCompiler *c, const MdPath *at, json_object *value,
				   void *field, int exits)
{
	MdState    *st = field;
	int		  **effects = exits ? &st->exit : &st->entry;
	int		   *neffects = exits ? &st->nexit : &st->nentry;
	size_t		n;
	size_t		i;
	MdPath		frame;

	if (!json_object_is_type(value, json_type_array))
		return md_fail(c, at, "must be an array of function names");
	n = json_object_array_length(value);
	if (n > INT_MAX)
		return md_fail(c, at, "has too many elements");
	*effects = md_alloc(c, n, sizeof(int));
	if (*effects == NULL)
		return false;
	*neffects = 0;
	for (i = 0; i < n; i++)
	{
		if (!md_function(c, md_elem(&frame, at, i),
						 json_object_array_get_idx(value, i),
						 &(*effects)[i], MD_FN_EFFECT))
			return false;
		*neffects = (int) i + 1;
	}
	return true;
}

/* "postpone": an array of event tags; sorted and checked by md_finish() */
static bool
md_compile_postpone(MdCompiler *c, const MdPath *at, json_object *value,
					void *field, int arg)
{
	MdState    *st = field;
	size_t		n;
	size_t		i;
	MdPath		frame;

	if (!json_object_is_type(value, json_type_array))
		return md_fail(c, at, "must be an array of event tags");
	n = json_object_array_length(value);
	if (n > INT_MAX)
		return md_fail(c, at, "has too many elements");
	st->postpone = md_alloc(c, n, sizeof(const char *));
	if (st->postpone == NULL)
		return false;
	st->npostpone = 0;
	for (i = 0; i < n; i++)
	{
		const MdPath *ep = md_elem(&frame, at, i);
		const char *tag;
		size_t		len;

		if (!md_get_string(c, ep, json_object_array_get_idx(value, i), &tag, &len))
			return false;
		if (!md_check_name(c, ep, tag, "an event tag", false))
			return false;
		st->postpone[i] = md_strndup(c, tag, len);
		if (st->postpone[i] == NULL)
			return false;
		st->npostpone = (int) i + 1;
	}
	if (n > 0)
		c->def->postpones = true;
	return true;
}

/*
 * The payload of a timer's event ends up as jsonb: no NUL characters in its
 * strings, no NaN or infinite numbers (json-c would print something that is
 * not JSON), and no integer that json-c clamped to its 64-bit range (it
 * would print another number than the one written).
 */
static bool
md_check_payload(MdCompiler *c, const MdPath *at, json_object *value)
{
	MdPath		frame;
	const char *s;
	size_t		len;
	size_t		n;
	size_t		i;

	switch (json_object_get_type(value))
	{
		case json_type_string:
			return md_get_string(c, at, value, &s, &len);
		case json_type_double:
			if (!isfinite(json_object_get_double(value)))
				return md_fail(c, at, "must be a finite number");
			return true;
		case json_type_int:
			if (json_object_get_int64(value) == INT64_MIN ||
				json_object_get_uint64(value) == UINT64_MAX)
				return md_fail(c, at, "is out of range");
			return true;
		case json_type_array:
			n = json_object_array_length(value);
			for (i = 0; i < n; i++)
			{
				if (!md_check_payload(c, md_elem(&frame, at, i),
									  json_object_array_get_idx(value, i)))
					return false;
			}
			return true;
		case json_type_object:
			{
				struct json_object_iterator it = json_object_iter_begin(value);
				struct json_object_iterator end = json_object_iter_end(value);

				for (; !json_object_iter_equal(&it, &end);
					 json_object_iter_next(&it))
				{
					if (!md_check_payload(c,
										  md_key(&frame, at,
												 json_object_iter_peek_name(&it)),
										  json_object_iter_peek_value(&it)))
						return false;
				}
				return true;
			}
		default:
			return true;
	}
}

static bool
md_compile_timer_event(MdCompiler *c, const MdPath *at, json_object *value,
					   void *field, int arg)
{
	MdTimer    *timer = field;
	json_object *tag;
	const char *text;
	const char *s;
	size_t		len;
	MdPath		frame;
	const MdPath *tp;

	if (!json_object_is_type(value, json_type_object))
		return md_fail(c, at, "must be an object with a string \"_tag\"");
	tp = md_key(&frame, at, "_tag");
	if (!json_object_object_get_ex(value, "_tag", &tag))
		return md_fail(c, tp, "is required");
	if (!md_get_string(c, tp, tag, &s, &len) ||
		!md_check_name(c, tp, s, "an event tag", false))
		return false;
	timer->event_tag = md_strndup(c, s, len);
	if (timer->event_tag == NULL)
		return false;
	if (!md_check_payload(c, at, value))
		return false;
	text = json_object_to_json_string_ext(value,
										  JSON_C_TO_STRING_PLAIN |
										  JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text == NULL)
		return md_oom(c);
	timer->event = md_strdup(c, text);
	return timer->event != NULL;
}

static bool
md_timer_delay(MdCompiler *c, const MdPath *at, json_object *value,
			   void *field, int arg)
{
	MdTimer    *timer = field;
	const char *text;
	size_t		len;
	char		msg[512];

	if (!md_get_string(c, at, value, &text, &len))
		return false;
	if (!md_parse_interval(text, &timer->delay_us, msg, sizeof(msg)))
		return md_fail(c, at, "%s", msg);
	timer->delay = md_strndup(c, text, len);
	return timer->delay != NULL;
}

static const MdMember md_timer_members[] = {
	{"delay", MD_FIELD_STRING, true, md_timer_delay},
	{"event", MD_FIELD_ANY, true, md_compile_timer_event},
};

/* One element of "after": {"delay": INTERVAL, "event": {...}} */
static bool
md_compile_timer(MdCompiler *c, const MdPath *at, json_object *obj,
				 int state, MdTimer *timer)
{
	MdPath		frame;
	MdTimerCheck *checks;
	MdTimerCheck *check;

	if (!md_compile_members(c, at, obj, md_timer_members,
							MD_NMEMBERS(md_timer_members), timer))
		return false;

	/* The state must accept the event: checked once every rule is known */
	checks = md_grow(c, c->checks, c->nchecks, &c->maxchecks,
					 sizeof(MdTimerCheck));
	if (checks == NULL)
		return false;
	c->checks = checks;
	check = &c->checks[c->nchecks];
	check->state = state;
	check->event_tag = timer->event_tag;
	check->event = timer->event;
	check->path = md_path_string(c, c->scratch,
								 md_key(&frame, at, "event"));
	if (check->path == NULL)
		return false;
	c->nchecks++;
	return true;
}

/* "after": an array of timers */
static bool
md_compile_timers(MdCompiler *c, const MdPath *at, json_object *value,
				  void *field, int arg)
{
	MdState    *st = field;
	int			state = (int) (st - c->def->states);
	size_t		n;
	size_t		i;
	MdPath		frame;

	n = json_object_array_length(value);
	if (n > INT_MAX)
		return md_fail(c, at, "has too many elements");
	st->timers = md_alloc(c, n, sizeof(MdTimer));
	if (st->timers == NULL)
		return false;
	st->ntimers = 0;
	for (i = 0; i < n; i++)
	{
		if (!md_compile_timer(c, md_elem(&frame, at, i),
							  json_object_array_get_idx(value, i), state,
							  &st->timers[i]))
			return false;
		st->ntimers = (int) i + 1;
	}
	if (n > 0)
		c->def->needs_worker = true;
	return true;
}

static const MdMember md_state_members[] = {
	{"on", MD_FIELD_OBJECT, false, md_state_on},
	{"entry", MD_FIELD_ANY, false, md_compile_effects, 0, false},
	{"exit", MD_FIELD_ANY, false, md_compile_effects, 0, true},
	{"after", MD_FIELD_ARRAY, false, md_compile_timers},
	{"final", MD_FIELD_BOOLEAN, false, md_bool, offsetof(MdState, final)},
	{"postpone", MD_FIELD_ANY, false, md_compile_postpone},
	{"description", MD_FIELD_STRING, false, md_text},
};

static bool
md_compile_state(MdCompiler *c, const MdPath *at, json_object *obj,
				 MdState *st)
{
	MdPath		frame;

	if (!md_compile_members(c, at, obj, md_state_members,
							MD_NMEMBERS(md_state_members), st))
		return false;

	/* A final state is never left */
	if (st->final && st->nrules > 0)
		return md_fail(c, md_key(&frame, at, "on"),
					   "a final state accepts no events");
	if (st->final && st->ntimers > 0)
		return md_fail(c, md_key(&frame, at, "after"),
					   "a final state cannot have timers");
	if (st->final && st->nexit > 0)
		return md_fail(c, md_key(&frame, at, "exit"),
					   "a final state is never left, so it cannot have exit effects");
	if (st->final && st->npostpone > 0)
		return md_fail(c, md_key(&frame, at, "postpone"),
					   "a final state accepts no events, so it cannot postpone any");
	return true;
}

static int
md_cmp_state(const void *a, const void *b)
{
	return strcmp(((const MdState *) a)->name, ((const MdState *) b)->name);
}

/*
 * Before the walk: check the "states" object and its names, and lay out the
 * states sorted by name, so that targets resolve to their final indexes.
 */
static bool
md_collect_states(MdCompiler *c, json_object *root)
{
	MachineDef *def = c->def;
	json_object *states;
	struct json_object_iterator it;
	struct json_object_iterator end;
	MdPath		sframe;
	MdPath		frame;
	const MdPath *sp = md_key(&sframe, NULL, "states");
	int			n;
	int			i;

	if (!json_object_object_get_ex(root, "states", &states))
		return md_fail(c, sp, "is required");
	if (!json_object_is_type(states, json_type_object) ||
		json_object_object_length(states) <= 0)
		return md_fail(c, sp, "must be a non-empty object");

	n = json_object_object_length(states);
	def->states = md_alloc(c, (size_t) n, sizeof(MdState));
	if (def->states == NULL)
		return false;
	i = 0;
	it = json_object_iter_begin(states);
	end = json_object_iter_end(states);
	for (; !json_object_iter_equal(&it, &end) && i < n;
		 json_object_iter_next(&it))
	{
		const char *name = json_object_iter_peek_name(&it);

		if (!md_check_name(c, md_key(&frame, sp, name), name,
						   "a state name", false))
			return false;
		def->states[i].name = md_strdup(c, name);
		if (def->states[i].name == NULL)
			return false;
		i++;
	}
	def->nstates = i;
	qsort(def->states, (size_t) def->nstates, sizeof(MdState), md_cmp_state);
	for (i = 1; i < def->nstates; i++)
	{
		if (strcmp(def->states[i - 1].name, def->states[i].name) == 0)
			return md_fail(c, sp, "duplicate state \"%s\"", def->states[i].name);
	}
	return true;
}

static bool
md_compile_states(MdCompiler *c, const MdPath *at, json_object *states,
				  void *field, int arg)
{
	struct json_object_iterator it = json_object_iter_begin(states);
	struct json_object_iterator end = json_object_iter_end(states);
	MdPath		frame;

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
	{
		const char *name = json_object_iter_peek_name(&it);
		int			state = md_find_state(c->def, name);

		if (state < 0)			/* cannot happen: collected before */
			return md_fail(c, at, "state \"%s\" went missing", name);
		if (!md_compile_state(c, md_key(&frame, at, name),
							  json_object_iter_peek_value(&it),
							  &c->def->states[state]))
			return false;
	}
	return true;
}

/* ----------------------------------------------------------------
 * Event schemas, persistence, the root
 * ----------------------------------------------------------------
 */

static bool
md_compile_field_type(MdCompiler *c, const MdPath *at, json_object *value,
					  MdField *field)
{
	const char *s;
	size_t		len;
	size_t		base;
	size_t		i;

	if (!md_get_string(c, at, value, &s, &len))
		return false;
	base = len;
	if (len > 0 && s[len - 1] == '?')
	{
		field->optional = true;
		base--;
	}
	for (i = 0; i < MD_NFIELD_TYPES; i++)
	{
		if (md_word_eq(s, base, md_field_types[i].name))
		{
			field->type = (MdFieldType) i;
			return true;
		}
	}
	return md_fail(c, at,
				   "\"%s\" is not a type; expected string, number, boolean, object, array or any (with an optional trailing \"?\")",
				   s);
}

static bool
md_compile_schema(MdCompiler *c, const MdPath *at, json_object *obj,
				  MdEventSchema *schema)
{
	struct json_object_iterator it;
	struct json_object_iterator end;
	MdPath		frame;

	if (!json_object_is_type(obj, json_type_object))
		return md_fail(c, at, "must be an object mapping field names to types");
	schema->fields = md_alloc(c, (size_t) json_object_object_length(obj),
							  sizeof(MdField));
	if (schema->fields == NULL)
		return false;
	schema->nfields = 0;

	it = json_object_iter_begin(obj);
	end = json_object_iter_end(obj);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
	{
		const char *name = json_object_iter_peek_name(&it);
		const MdPath *kp = md_key(&frame, at, name);
		MdField    *field = &schema->fields[schema->nfields];

		if (strcmp(name, "_tag") == 0)
			return md_fail(c, kp,
						   "\"_tag\" cannot be declared; every event has one");
		if (!md_check_name(c, kp, name, "a field name", true))
			return false;
		field->name = md_strdup(c, name);
		if (field->name == NULL)
			return false;
		schema->nfields++;
		if (!md_compile_field_type(c, kp, json_object_iter_peek_value(&it),
								   field))
			return false;
	}
	return true;
}

static bool
md_compile_events(MdCompiler *c, const MdPath *at, json_object *obj,
				  void *field, int arg)
{
	MachineDef *def = field;
	struct json_object_iterator it;
	struct json_object_iterator end;
	MdPath		frame;

	def->events = md_alloc(c, (size_t) json_object_object_length(obj),
						   sizeof(MdEventSchema));
	if (def->events == NULL)
		return false;
	def->nevents = 0;

	it = json_object_iter_begin(obj);
	end = json_object_iter_end(obj);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
	{
		const char *tag = json_object_iter_peek_name(&it);
		const MdPath *kp = md_key(&frame, at, tag);
		MdEventSchema *schema = &def->events[def->nevents];

		if (!md_check_name(c, kp, tag, "an event tag", false))
			return false;
		schema->event = md_strdup(c, tag);
		if (schema->event == NULL)
			return false;
		def->nevents++;
		if (!md_compile_schema(c, kp, json_object_iter_peek_value(&it),
							   schema))
			return false;
	}
	return true;
}

/* "snapshotSchedule": definition_interval.c parses the text */
static bool
md_schedule(MdCompiler *c, const MdPath *at, json_object *value,
			void *field, int arg)
{
	const char *text;
	size_t		len;

	return md_get_string(c, at, value, &text, &len) &&
		md_compile_schedule_text(c, at, text, len, field);
}

static const MdMember md_persistence_members[] = {
	{"snapshotSchedule", MD_FIELD_STRING, false, md_schedule},
	{"journalEvents", MD_FIELD_BOOLEAN, false, md_bool,
		offsetof(MdPersistence, journal_events)},
	{"machineType", MD_FIELD_STRING, false, md_name,
		offsetof(MdPersistence, machine_type), MD_MAX_NAME_LEN},
	{"adapter", MD_FIELD_STRING, false, md_name,
		offsetof(MdPersistence, adapter), INT_MAX},
};

/* "persistence": how the actors' journals and snapshots are kept */
static bool
md_compile_persistence(MdCompiler *c, const MdPath *at, json_object *obj,
					   void *field, int arg)
{
	MdPersistence *ps = field;

	ps->enabled = true;
	return md_compile_members(c, at, obj, md_persistence_members,
							  MD_NMEMBERS(md_persistence_members), ps);
}

static const MdMember md_entity_members[] = {
	{"init", MD_FIELD_STRING, false, md_function,
		offsetof(MachineDef, entity_init), MD_FN_ENTITY_INIT},
};

/* "entity": {"init": "fn"}, the actor spawned by an entity's first message */
static bool
md_compile_entity(MdCompiler *c, const MdPath *at, json_object *obj,
				  void *field, int arg)
{
	MachineDef *def = field;

	def->entity = true;
	return md_compile_members(c, at, obj, md_entity_members,
							  MD_NMEMBERS(md_entity_members), def);
}

/* "unhandled": whether an event the state does not handle is an error */
static bool
md_root_unhandled(MdCompiler *c, const MdPath *at, json_object *value,
				  void *field, int arg)
{
	bool		string = json_object_is_type(value, json_type_string);
	const char *s = string ? json_object_get_string(value) : "";
	size_t		len = string ? (size_t) json_object_get_string_len(value) : 0;

	if (!md_word_eq(s, len, "error") && !md_word_eq(s, len, "ignore"))
		return md_fail(c, at, "must be \"error\" or \"ignore\"");
	((MachineDef *) field)->unhandled_ignore = s[0] == 'i';
	return true;
}

/* The root; md_collect_states() has checked "states" before */
static const MdMember md_root_members[] = {
	{"initial", MD_FIELD_STRING, true, md_target,
		offsetof(MachineDef, initial)},
	{"states", MD_FIELD_OBJECT, false, md_compile_states},
	{"any", MD_FIELD_OBJECT, false, md_root_any},
	{"events", MD_FIELD_OBJECT, false, md_compile_events},
	{"unhandled", MD_FIELD_ANY, false, md_root_unhandled},
	{"notify", MD_FIELD_STRING, false, md_name,
		offsetof(MachineDef, notify), MD_MAX_NAME_LEN},
	{"persistence", MD_FIELD_OBJECT, false, md_compile_persistence,
		offsetof(MachineDef, persistence)},
	{"entity", MD_FIELD_OBJECT, false, md_compile_entity},
	{"migrate", MD_FIELD_STRING, false, md_function,
		offsetof(MachineDef, migrate), MD_FN_MIGRATE},
	{"upcast", MD_FIELD_STRING, false, md_function,
		offsetof(MachineDef, upcast), MD_FN_UPCAST},
	{"description", MD_FIELD_STRING, false, md_text},
};

/* ----------------------------------------------------------------
 * After the walk
 * ----------------------------------------------------------------
 */

static int
md_cmp_rule(const void *a, const void *b)
{
	return strcmp(((const MdRule *) a)->event, ((const MdRule *) b)->event);
}

static int
md_cmp_schema(const void *a, const void *b)
{
	return strcmp(((const MdEventSchema *) a)->event,
				  ((const MdEventSchema *) b)->event);
}

static int
md_cmp_field(const void *a, const void *b)
{
	return strcmp(((const MdField *) a)->name, ((const MdField *) b)->name);
}

static int
md_cmp_tag(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Sort a state's postponed events, and check that each is listed once and
 * is not one the state handles itself (its "any" rules it may override).
 */
static bool
md_finish_postpone(MdCompiler *c, const MdPath *at, MdState *st)
{
	if (st->npostpone > 1)
		qsort(st->postpone, (size_t) st->npostpone, sizeof(const char *),
			  md_cmp_tag);
	for (int i = 0; i < st->npostpone; i++)
	{
		if (i > 0 && strcmp(st->postpone[i - 1], st->postpone[i]) == 0)
			return md_fail(c, at, "lists event \"%s\" twice", st->postpone[i]);
		if (md_find_rule(st->rules, st->nrules, st->postpone[i]) != NULL)
			return md_fail(c, at,
						   "event \"%s\" is handled by this state's \"on\", so it cannot be postponed",
						   st->postpone[i]);
	}
	return true;
}

/* Sort rules by event; json-c keeps one value per key, but check anyway */
static bool
md_sort_rules(MdCompiler *c, const MdPath *at, MdRule *rules, int nrules)
{
	int			i;

	if (nrules > 1)
		qsort(rules, (size_t) nrules, sizeof(MdRule), md_cmp_rule);
	for (i = 1; i < nrules; i++)
	{
		if (strcmp(rules[i - 1].event, rules[i].event) == 0)
			return md_fail(c, at, "duplicate event \"%s\"", rules[i].event);
	}
	return true;
}


/*
 * A timer's event must fit its payload schema, as a send's would: every
 * required field present (null counts as absent) and of its type, and no
 * field the schema does not declare.
 */
static bool
md_check_timer_payload(MdCompiler *c, const MdTimerCheck *check)
{
	const MdEventSchema *schema = md_find_event_schema(c->def, check->event_tag);
	json_object *event;
	bool		ok = true;

	if (schema == NULL)
		return true;
	event = json_tokener_parse(check->event);
	if (event == NULL)
		return md_fail_text(c, check->path, "is not valid JSON");
	for (int i = 0; ok && i < schema->nfields; i++)
	{
		const MdField *field = &schema->fields[i];
		json_object *value = NULL;

		if (!json_object_object_get_ex(event, field->name, &value) ||
			value == NULL)
		{
			if (!field->optional)
				ok = md_fail_text(c, check->path,
								  "event \"%s\" has no field \"%s\"",
								  check->event_tag, field->name);
		}
		else if (!md_field_fits(value, field->type))
			ok = md_fail_text(c, check->path,
							  "field \"%s\" of event \"%s\" must be %s",
							  field->name, check->event_tag,
							  md_field_type_article(field->type));
	}
	if (ok)
	{
		json_object_object_foreach(event, key, value)
		{
			bool		declared = strcmp(key, "_tag") == 0;

			(void) value;
			for (int i = 0; !declared && i < schema->nfields; i++)
				declared = strcmp(schema->fields[i].name, key) == 0;
			if (!declared)
			{
				ok = md_fail_text(c, check->path,
								  "event \"%s\" has an undeclared field \"%s\"",
								  check->event_tag, key);
				break;
			}
		}
	}
	json_object_put(event);
	return ok;
}

static bool
md_finish(MdCompiler *c)
{
	MachineDef *def = c->def;
	MdPath		frames[3];
	int			i;
	int			j;

	for (i = 0; i < def->nstates; i++)
	{
		const MdPath *sp = md_key(&frames[1], md_key(&frames[0], NULL, "states"),
								  def->states[i].name);

		if (!md_sort_rules(c, md_key(&frames[2], sp, "on"),
						   def->states[i].rules, def->states[i].nrules))
			return false;
		if (!md_finish_postpone(c, md_key(&frames[2], sp, "postpone"),
								&def->states[i]))
			return false;
	}
	if (!md_sort_rules(c, md_key(&frames[0], NULL, "any"), def->any, def->nany))
		return false;

	if (def->nevents > 1)
		qsort(def->events, (size_t) def->nevents, sizeof(MdEventSchema),
			  md_cmp_schema);
	for (i = 0; i < def->nevents; i++)
	{
		MdEventSchema *schema = &def->events[i];

		if (i > 0 && strcmp(def->events[i - 1].event, schema->event) == 0)
			return md_fail(c, md_key(&frames[0], NULL, "events"),
						   "duplicate event \"%s\"", schema->event);
		if (schema->nfields > 1)
			qsort(schema->fields, (size_t) schema->nfields, sizeof(MdField),
				  md_cmp_field);
		for (j = 1; j < schema->nfields; j++)
		{
			if (strcmp(schema->fields[j - 1].name, schema->fields[j].name) == 0)
				return md_fail(c, md_key(&frames[1],
										 md_key(&frames[0], NULL, "events"),
										 schema->event),
							   "duplicate field \"%s\"", schema->fields[j].name);
		}
	}

	/* Every timer's event must be accepted by its state */
	for (i = 0; i < c->nchecks; i++)
	{
		const MdTimerCheck *check = &c->checks[i];

		if (md_state_rule(def, check->state, check->event_tag) == NULL)
			return md_fail_text(c, check->path,
								"state \"%s\" does not accept event \"%s\"",
								def->states[check->state].name,
								check->event_tag);
		if (!md_check_timer_payload(c, check))
			return false;
	}

	def->functions = md_alloc(c, (size_t) c->nfunctions, sizeof(MdFunction));
	if (def->functions == NULL)
		return false;
	if (c->nfunctions > 0)
		memcpy(def->functions, c->functions,
			   (size_t) c->nfunctions * sizeof(MdFunction));
	def->nfunctions = c->nfunctions;
	return true;
}

/* ----------------------------------------------------------------
 * The API
 * ----------------------------------------------------------------
 */

/* Parse the text; NULL with the error reported when it is not a JSON object */
static json_object *
md_parse(MdCompiler *c, const char *json, size_t len)
{
	json_tokener *tok;
	json_object *root;
	enum json_tokener_error jerr;
	size_t		parse_end = len;

	if (len > (size_t) INT_MAX - 1)
	{
		md_fail(c, NULL, "invalid JSON: the text is too long");
		return NULL;
	}
	tok = json_tokener_new_ex(MD_JSON_DEPTH);
	if (tok == NULL)
	{
		md_oom(c);
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, json != NULL ? json : "", (int) len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_success)
		parse_end = json_tokener_get_parse_end(tok);
	else if (jerr == json_tokener_continue)
	{
		/* The end of the input: pass the terminator that ends a number */
		root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
	}
	json_tokener_free(tok);

	if (jerr != json_tokener_success)
	{
		json_object_put(root);
		md_fail(c, NULL, "invalid JSON: %s", json_tokener_error_desc(jerr));
		return NULL;
	}
	if (parse_end < len)
	{
		/* json-c stops at a NUL byte; strict mode refuses anything else */
		json_object_put(root);
		md_fail(c, NULL, "invalid JSON: %s",
				json[parse_end] == '\0' ? "unexpected NUL byte" :
				"unexpected characters after the value");
		return NULL;
	}
	if (!json_object_is_type(root, json_type_object))
	{
		json_object_put(root);
		md_fail(c, NULL, "must be a JSON object");
		return NULL;
	}
	return root;
}

MachineDef *
md_compile(const char *json, size_t len, char *errbuf, size_t errlen)
{
	MdCompiler	c;
	json_object *root;
	bool		ok;

	memset(&c, 0, sizeof(c));
	c.errbuf = errbuf;
	c.errlen = errlen;
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (json == NULL)
		len = 0;

	c.arena = md_arena_create();
	if (c.arena == NULL)
	{
		md_oom(&c);
		return NULL;
	}
	c.scratch = md_arena_create();
	if (c.scratch == NULL)
	{
		md_arena_destroy(c.arena);
		md_oom(&c);
		return NULL;
	}
	c.def = md_arena_alloc(c.arena, sizeof(MachineDef));
	if (c.def == NULL)
	{
		md_arena_destroy(c.scratch);
		md_arena_destroy(c.arena);
		md_oom(&c);
		return NULL;
	}
	c.def->arena = c.arena;
	c.def->initial = -1;
	c.def->persistence.journal_events = true;
	c.def->persistence.schedule = MD_SNAPSHOT_NEVER;
	c.def->entity_init = -1;
	c.def->migrate = -1;
	c.def->upcast = -1;

	root = md_parse(&c, json, len);
	ok = root != NULL &&
		md_collect_states(&c, root) &&
		md_compile_members(&c, NULL, root, md_root_members,
						   MD_NMEMBERS(md_root_members), c.def);
	if (ok && md_text_has_nul_escape(json, len))
		ok = md_fail(&c, NULL, "object keys must not contain NUL characters");
	if (ok)
		ok = md_finish(&c);

	json_object_put(root);
	md_arena_destroy(c.scratch);
	if (!ok)
	{
		md_arena_destroy(c.arena);
		return NULL;
	}
	return c.def;
}

void
md_free(MachineDef *def)
{
	if (def != NULL)
		md_arena_destroy(def->arena);
}

int
md_find_state(const MachineDef *def, const char *name)
{
	int			lo = 0;
	int			hi;

	if (def == NULL || name == NULL)
		return -1;
	hi = def->nstates - 1;
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			cmp = strcmp(name, def->states[mid].name);

		if (cmp == 0)
			return mid;
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return -1;
}

const MdRule *
md_find_rule(const MdRule *rules, int nrules, const char *event)
{
	int			lo = 0;
	int			hi = nrules - 1;

	if (rules == NULL || event == NULL)
		return NULL;
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			cmp = strcmp(event, rules[mid].event);

		if (cmp == 0)
			return &rules[mid];
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

const MdEventSchema *
md_find_event_schema(const MachineDef *def, const char *event)
{
	int			lo = 0;
	int			hi;

	if (def == NULL || event == NULL)
		return NULL;
	hi = def->nevents - 1;
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			cmp = strcmp(event, def->events[mid].event);

		if (cmp == 0)
			return &def->events[mid];
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool
md_state_postpones(const MachineDef *def, int state, const char *event)
{
	const MdState *st;

	if (def == NULL || state < 0 || state >= def->nstates || event == NULL)
		return false;
	st = &def->states[state];
	return st->npostpone > 0 &&
		bsearch(&event, st->postpone, (size_t) st->npostpone,
				sizeof(const char *), md_cmp_tag) != NULL;
}

const MdRule *
md_state_rule(const MachineDef *def, int state, const char *event)
{
	const MdState *st;
	const MdRule *rule;

	if (def == NULL || state < 0 || state >= def->nstates)
		return NULL;
	st = &def->states[state];
	if (st->final || md_state_postpones(def, state, event))
		return NULL;
	rule = md_find_rule(st->rules, st->nrules, event);
	if (rule != NULL)
		return rule;
	return md_find_rule(def->any, def->nany, event);
}
