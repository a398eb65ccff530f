/*-------------------------------------------------------------------------
 *
 * values.c
 *	  States and events as jsonb: validation and construction.
 *
 * A state or an event is a jsonb object with a string "_tag".  New states
 * are built by pushing the old state's pairs, then (for merge) the event's,
 * then the tag: jsonb keeps the last of duplicate keys, so later pushes win
 * without any explicit key matching.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/fmgrprotos.h"

#include "machine.h"
#include "definition.h"
#include "values.h"

static const char *
jsonb_type_name(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "a scalar";
	}
}

/* The value of a top-level key of a jsonb object, or NULL */
JsonbValue *
jsonb_field(Jsonb *object, const char *key)
{
	JsonbValue	k;

	if (!JB_ROOT_IS_OBJECT(object) || JB_ROOT_IS_SCALAR(object))
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&object->root, JB_FOBJECT, &k);
}

void
check_object(Jsonb *value, const char *what)
{
	JsonbValue	scalar;

	if (JB_ROOT_IS_OBJECT(value))
		return;
	if (!JsonbExtractScalar(&value->root, &scalar))
	{
		scalar.type = jbvBinary;
		scalar.val.binary.data = &value->root;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be a JSON object", what),
			 errdetail("Got %s.", jsonb_type_name(&scalar))));
}

/* The "_tag" of a state or event, validated; "what" names it in errors */
static char *
tag_of(Jsonb *value, const char *what)
{
	JsonbValue *tag;

	check_object(value, what);
	tag = jsonb_field(value, MACHINE_TAG_KEY);
	if (tag == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has no \"_tag\"", what),
				 errhint("States and events are JSON objects with a string \"_tag\", like {\"_tag\": \"Pay\"}.")));
	if (tag->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"_tag\" of %s must be a string", what),
				 errdetail("Got %s.", jsonb_type_name(tag))));
	if (tag->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"_tag\" of %s must not be empty", what)));
	return pnstrdup(tag->val.string.val, tag->val.string.len);
}

/* The tag of an event a user sends; "$" tags are the extension's own */
char *
event_tag(Jsonb *event)
{
	char	   *tag = tag_of(event, "event");

	if (tag[0] == MACHINE_RESERVED_PREFIX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event tag \"%s\" is reserved", tag),
				 errdetail("Tags starting with \"$\" are reserved for the journal entries of the machine extension.")));
	return tag;
}

char *
state_tag(Jsonb *state, const char *what)
{
	return tag_of(state, what);
}

void
check_actor_id(const char *actor_id)
{
	size_t		len = strlen(actor_id);

	if (len == 0 || len > MACHINE_MAX_ACTOR_ID_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid actor id \"%s\"", actor_id),
				 errdetail("An actor id has 1 to %d bytes.",
						   MACHINE_MAX_ACTOR_ID_LEN)));
}

/* Push every top-level pair of an object except "_tag" */
static void
push_pairs(JsonbParseState **state, Jsonb *object)
{
	JsonbIterator *it = JsonbIteratorInit(&object->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		skip = false;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			skip = v.val.string.len == sizeof(MACHINE_TAG_KEY) - 1 &&
				memcmp(v.val.string.val, MACHINE_TAG_KEY, sizeof(MACHINE_TAG_KEY) - 1) == 0;
			if (!skip)
				pushJsonbValue(state, WJB_KEY, &v);
		}
		else if (tok == WJB_VALUE && !skip)
			pushJsonbValue(state, WJB_VALUE, &v);
	}
}

/*
 * A new state: the pairs of "data", then those of "merge" (may be NULL),
 * with "_tag" set to the tag.
 */
Jsonb *
jsonb_with_tag(Jsonb *data, Jsonb *merge, const char *tag)
{
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_pairs(&state, data);
	if (merge != NULL)
		push_pairs(&state, merge);
	k.type = jbvString;
	k.val.string.val = MACHINE_TAG_KEY;
	k.val.string.len = sizeof(MACHINE_TAG_KEY) - 1;
	pushJsonbValue(&state, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = (char *) tag;
	v.val.string.len = strlen(tag);
	pushJsonbValue(&state, WJB_VALUE, &v);
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

Jsonb *
jsonb_from_cstring(const char *json)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/*
 * The event entry effects receive on spawn ("$init") and on restore
 * ("$restore"), built once per backend.
 */
Jsonb *
lifecycle_event(const char *tag)
{
	static Jsonb *init = NULL;
	static Jsonb *restore = NULL;
	Jsonb	  **event = strcmp(tag, MACHINE_INIT_TAG) == 0 ? &init : &restore;

	if (*event == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		*event = jsonb_with_tag(jsonb_from_cstring("{}"), NULL, tag);
		MemoryContextSwitchTo(old);
	}
	return *event;
}

static bool
field_fits(JsonbValue *v, MdFieldType type)
{
	switch (type)
	{
		case MD_FIELD_STRING:
			return v->type == jbvString;
		case MD_FIELD_NUMBER:
			return v->type == jbvNumeric;
		case MD_FIELD_BOOLEAN:
			return v->type == jbvBool;
		case MD_FIELD_OBJECT:
			return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
		case MD_FIELD_ARRAY:
			return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
		case MD_FIELD_ANY:
			return true;
	}
	return false;
}

/*
 * Check an event against its payload schema, when the machine declares one:
 * every required field present with its type, optional fields of their type
 * when present (null counts as absent), and no field the schema lacks.
 */
void
check_event_payload(const MachineDef *def, Jsonb *event, const char *tag)
{
	const MdEventSchema *schema = md_find_event_schema(def, tag);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (schema == NULL)
		return;

	for (int i = 0; i < schema->nfields; i++)
	{
		const MdField *field = &schema->fields[i];
		JsonbValue *value = jsonb_field(event, field->name);

		if (value == NULL || value->type == jbvNull)
		{
			if (field->optional)
				continue;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("event \"%s\" has no field \"%s\"", tag, field->name),
					 errdetail("Field \"%s\" is a required %s.", field->name,
							   md_field_type_name(field->type))));
		}
		if (!field_fits(value, field->type))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("field \"%s\" of event \"%s\" must be %s",
							field->name, tag,
							md_field_type_article(field->type)),
					 errdetail("Got %s.", jsonb_type_name(value))));
	}

	/* fields the schema does not declare */
	it = JsonbIteratorInit(&event->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		if (strcmp(key, MACHINE_TAG_KEY) == 0)
			continue;
		for (int i = 0; i < schema->nfields && !known; i++)
			known = strcmp(schema->fields[i].name, key) == 0;
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("event \"%s\" has an undeclared field \"%s\"", tag, key),
					 errhint("The machine's \"events\" schema for \"%s\" does not declare it.",
							 tag)));
	}
}
