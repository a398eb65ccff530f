/*-------------------------------------------------------------------------
 *
 * dependencies.c
 *	  Guards, handlers, effects and other functions that a machine's current
 *	  revision uses cannot be dropped, renamed or moved away.
 *
 * A definition names its functions; machine_define resolves them and
 * stores their qualified names, which every session resolves again (with
 * the signature their use requires) when it compiles the machine.  Without
 * a guard, DROP FUNCTION would leave the machine broken until it is
 * redefined, and it would only show at its next send.
 *
 * Two event triggers of the extension call machine.functions_changed():
 *	 sql_drop			after any command that dropped functions (DROP
 *						FUNCTION, DROP SCHEMA ... CASCADE, DROP OWNED, ...):
 *						the machines naming a dropped function's qualified
 *						name are checked;
 *	 ddl_command_end	after ALTER FUNCTION, ALTER PROCEDURE, ALTER ROUTINE
 *						and ALTER SCHEMA (a rename or SET SCHEMA moves a
 *						function away from its stored name): every machine
 *						is checked, but for the functions that did not
 *						resolve when the command started, which a third
 *						trigger on ddl_command_start notes.
 * A machine whose function no longer resolves makes the command fail with
 * an error that names the machine, the function and where the definition
 * uses it; the transaction rolls back, the function stays.  Replacing a
 * function with another signature is a drop and a create, so the drop is
 * refused.  Only the current revision counts: older revisions are history.
 *
 * Why event triggers rather than pg_depend entries: machines are rows of
 * machine.machines, not catalog objects, so a pg_depend entry would have to
 * name the extension as the dependent object, and DROP FUNCTION would then
 * report that "extension machine" requires the function, without saying
 * which machine, and would also need the entries kept in step with every
 * redefinition and drop.  The triggers read the machines themselves.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "adapter.h"
#include "definition.h"
#include "registry.h"
#include "store_machines.h"

/* Has the database the extension's tables (not during its own drop)? */
static bool
machines_exist(void)
{
	Oid			nsp = get_namespace_oid("machine", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("machines", nsp));
}

static char *
lower_case(const char *text)
{
	char	   *result = pstrdup(text);

	for (char *p = result; *p; p++)
		*p = pg_tolower((unsigned char) *p);
	return result;
}

/*
 * The functions of machines that did not resolve when the ALTER being run
 * started ("machine\nqualified name" strings, in TopMemoryContext): the
 * command is refused only for what it breaks itself, not for a function
 * dropped earlier while the triggers were disabled.
 */
static List *broken_before = NIL;
static bool collecting = false;	/* at ddl_command_start: remember, refuse
								 * nothing */

static char *
broken_key(const char *machine, const char *qualified)
{
	return psprintf("%s\n%s", machine, qualified);
}

/* Should a function that does not resolve now be let pass? */
static bool
let_pass(const char *machine, const char *qualified, bool dropping)
{
	char	   *key;
	ListCell   *lc;

	if (dropping)
		return false;
	key = broken_key(machine, qualified);
	if (collecting)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		broken_before = lappend(broken_before, pstrdup(key));
		MemoryContextSwitchTo(old);
		return true;
	}
	foreach(lc, broken_before)
		if (strcmp(lfirst(lc), key) == 0)
			return true;
	return false;
}

static bool
name_in(const char *name, Datum *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(TextDatumGetCString(names[i]), name) == 0)
			return true;
	return false;
}

/*
 * The same for the functions of a machine's user adapter, which the
 * definition names by their schema only
 */
static void
check_adapter(StoredMachine *m, const char *schema, Datum *dnames, int ndnames,
			  const char *tag)
{
	for (int i = 0; i < ADAPTER_NFUNCTIONS; i++)
	{
		char	   *qualified = quote_qualified_identifier(schema,
														   adapter_function_name(i));
		char	   *signature;

		if (dnames && !name_in(qualified, dnames, ndnames))
			continue;
		if (adapter_function_exists(schema, i, &signature) ||
			let_pass(m->name, qualified, dnames != NULL))
			continue;
		if (dnames)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop function %s because machine \"%s\" uses it",
							signature, m->name),
					 errdetail("It is the %s of adapter \"%s\" (persistence.adapter) in the machine's current revision.",
							   adapter_function_name(i), schema),
					 errhint("Redefine machine \"%s\" on another adapter once it has no actors, or drop the machine, first.",
							 m->name)));
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot %s: machine \"%s\" uses function %s",
						lower_case(tag), m->name, signature),
				 errdetail("It is the %s of adapter \"%s\" (persistence.adapter) in the machine's current revision; after the command no function of that name and signature would remain.",
						   adapter_function_name(i), schema),
				 errhint("Keep the adapter's functions in schema \"%s\" while machine \"%s\" uses it.",
						 schema, m->name)));
	}
}

/*
 * Refuse the command if a function of the machine's current revision no
 * longer resolves; with "dropped", only its functions of those names are
 * looked at.
 */
static void
check_machine(StoredMachine *m, ArrayType *dropped, const char *tag)
{
	char		errbuf[512];
	MachineDef *def = md_compile(m->definition, strlen(m->definition),
								 errbuf, sizeof(errbuf));
	Datum	   *fnames;
	int			nfnames;
	Datum	   *dnames = NULL;
	int			ndnames = 0;

	/* a row that does not compile is reported when the machine is used */
	if (def == NULL)
		return;
	PG_TRY();
	{
		deconstruct_array(m->functions, TEXTOID, -1, false, TYPALIGN_INT,
						  &fnames, NULL, &nfnames);
		if (dropped)
			deconstruct_array(dropped, TEXTOID, -1, false, TYPALIGN_INT,
							  &dnames, NULL, &ndnames);
		for (int i = 0; i < Min(nfnames, def->nfunctions); i++)
		{
			const MdFunction *fn = &def->functions[i];
			char	   *name = TextDatumGetCString(fnames[i]);
			char	   *signature;

			if (dropped && !name_in(name, dnames, ndnames))
				continue;
			if (OidIsValid(machine_stored_function(fn->kind, name, &signature)) ||
				let_pass(m->name, name, dropped != NULL))
				continue;
			if (dropped)
				ereport(ERROR,
						(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
						 errmsg("cannot drop function %s because machine \"%s\" uses it",
								signature, m->name),
						 errdetail("It is the %s at %s in the machine's current revision.",
								   machine_function_kind_name(fn->kind), fn->path),
						 errhint("Redefine machine \"%s\" without it, or drop the machine, first.",
								 m->name)));
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot %s: machine \"%s\" uses function %s",
							lower_case(tag),
							m->name, signature),
					 errdetail("It is the %s at %s in the machine's current revision; after the command no function of that name and signature would remain.",
							   machine_function_kind_name(fn->kind), fn->path),
					 errhint("Redefine machine \"%s\" with the new name first.",
							 m->name)));
		}
		if (!adapter_is_builtin(def->persistence.adapter))
			check_adapter(m, def->persistence.adapter, dnames, ndnames, tag);
	}
	PG_FINALLY();
	{
		md_free(def);
	}
	PG_END_TRY();
}

/*
 * machine.functions_changed() RETURNS event_trigger
 *
 * The event triggers machine_functions_dropped (sql_drop) and
 * machine_functions_altered (ddl_command_end of ALTER FUNCTION, ALTER
 * PROCEDURE, ALTER ROUTINE and ALTER SCHEMA): refuse the command when a
 * function that a machine's current revision uses is gone from under its
 * stored name.
 */
PG_FUNCTION_INFO_V1(machine_functions_changed);
Datum
machine_functions_changed(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	ArrayType  *dropped = NULL;
	List	   *machines;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("machine.functions_changed() must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!machines_exist())
		PG_RETURN_VOID();

	collecting = strcmp(trigdata->event, "ddl_command_start") == 0;
	if (collecting)
	{
		list_free_deep(broken_before);
		broken_before = NIL;
	}
	SPI_connect();
	if (strcmp(trigdata->event, "sql_drop") == 0)
	{
		dropped = store_dropped_functions();
		if (dropped == NULL)
		{
			SPI_finish();
			PG_RETURN_VOID();
		}
	}
	machines = store_machines_using(dropped);
	foreach(lc, machines)
		check_machine(lfirst(lc), dropped, GetCommandTagName(trigdata->tag));
	SPI_finish();
	PG_RETURN_VOID();
}
