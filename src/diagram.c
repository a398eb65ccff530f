/*-------------------------------------------------------------------------
 *
 * diagram.c
 *	  machine_diagram: a machine drawn as a Mermaid stateDiagram-v2 or as a
 *	  Graphviz DOT digraph.
 *
 * Both drawings show the same things: the initial state ([*] --> S, or a
 * point), final states (S --> [*], or a double border), one edge per
 * candidate transition labelled "Event [guard] / handler", the "any"
 * transitions on every state that takes them (a state's own rule for an
 * event hides the "any" rule, as postponing it does), a choice node where
 * the handler names the target, and entry and exit effects, timers and
 * postponed events inside each state.
 *
 * Names come from users, so everything is escaped: DOT nodes are s0, s1,
 * ... with quoted labels; Mermaid uses state names as ids when every name
 * is a plain identifier, and otherwise "state "<name>" as sN" for all of
 * them, with Mermaid's #code; entities for characters its parser takes as
 * syntax.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "definition.h"
#include "registry.h"
#include "store_machines.h"

typedef enum DiagramFormat
{
	DIAGRAM_MERMAID,
	DIAGRAM_DOT
} DiagramFormat;

typedef struct Diagram
{
	const MachineDef *def;
	DiagramFormat format;
	bool		aliases;		/* Mermaid: states are declared as sN */
	int		   *order;			/* state indexes, as drawn */
	int			nchoices;
	StringInfoData out;
} Diagram;

/* Words that Mermaid's state diagram grammar reserves */
static const char *const mermaid_keywords[] = {
	"as", "class", "classDef", "click", "direction", "end", "hide", "left",
	"note", "of", "over", "right", "state", "stateDiagram", "stateDiagram-v2",
	"style"
};

static bool
mermaid_plain(const char *name)
{
	if (!((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z')))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	/* choice nodes are named choice__N */
	if (strstr(name, "__") != NULL)
		return false;
	for (int i = 0; i < lengthof(mermaid_keywords); i++)
		if (pg_strcasecmp(name, mermaid_keywords[i]) == 0)
			return false;
	return true;
}

/* Text inside a DOT double-quoted string */
static void
dot_text(StringInfo out, const char *s)
{
	for (const char *p = s; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			appendStringInfoChar(out, '\\');
		if ((unsigned char) *p < ' ')
			appendStringInfoChar(out, ' ');
		else
			appendStringInfoChar(out, *p);
	}
}

/* Text of a Mermaid label or state name, to the end of its line */
static void
mermaid_text(StringInfo out, const char *s)
{
	for (const char *p = s; *p; p++)
	{
		switch (*p)
		{
			case '"':
				appendStringInfoString(out, "#quot;");
				break;
			case '#':
			case ';':
			case '<':
			case '>':
			case ':':
			case '{':
			case '}':
			case '[':
			case ']':
				appendStringInfo(out, "#%d;", (int) (unsigned char) *p);
				break;
			default:
				appendStringInfoChar(out, (unsigned char) *p < ' ' ? ' ' : *p);
		}
	}
}

static void
put_text(Diagram *d, const char *s)
{
	if (d->format == DIAGRAM_DOT)
		dot_text(&d->out, s);
	else
		mermaid_text(&d->out, s);
}

/* A reference to a state: its id in either format */
static void
state_ref(Diagram *d, int index)
{
	if (d->format == DIAGRAM_DOT || d->aliases)
		appendStringInfo(&d->out, "s%d", index);
	else
		appendStringInfoString(&d->out, d->def->states[index].name);
}

static const char *
function_name(Diagram *d, int fn)
{
	return d->def->functions[fn].name;
}

/* "Event [guard] / handler", with "after DELAY" for a timer's event */
static void
edge_label(Diagram *d, const char *event, const MdTransition *t)
{
	put_text(d, event);
	if (t->guard >= 0)
	{
		appendStringInfoString(&d->out, d->format == DIAGRAM_DOT ? " [" : " #91;");
		put_text(d, function_name(d, t->guard));
		appendStringInfoString(&d->out, d->format == DIAGRAM_DOT ? "]" : "#93;");
	}
	if (t->handler >= 0)
	{
		appendStringInfoString(&d->out, " / ");
		put_text(d, function_name(d, t->handler));
	}
}

static void
edge(Diagram *d, int from, const char *event, const MdTransition *t)
{
	int			choice = -1;

	if (t->target < 0)
	{
		/* the handler's result names the state */
		choice = d->nchoices++;
		if (d->format == DIAGRAM_DOT)
			appendStringInfo(&d->out,
							 "  c%d [shape=diamond, label=\"\", width=0.3, height=0.3, tooltip=\"the handler names the state\"];\n",
							 choice);
		else
			appendStringInfo(&d->out, "    state choice__%d <<choice>>\n", choice);
	}
	appendStringInfoString(&d->out, d->format == DIAGRAM_DOT ? "  " : "    ");
	state_ref(d, from);
	appendStringInfoString(&d->out, d->format == DIAGRAM_DOT ? " -> " : " --> ");
	if (choice >= 0)
		appendStringInfo(&d->out, d->format == DIAGRAM_DOT ? "c%d" : "choice__%d",
						 choice);
	else
		state_ref(d, t->target);
	if (d->format == DIAGRAM_DOT)
	{
		appendStringInfoString(&d->out, " [label=\"");
		edge_label(d, event, t);
		appendStringInfoString(&d->out, "\"];\n");
	}
	else
	{
		appendStringInfoString(&d->out, " : ");
		edge_label(d, event, t);
		appendStringInfoChar(&d->out, '\n');
	}
}

static void
rule_edges(Diagram *d, int from, const MdRule *rule)
{
	for (int i = 0; i < rule->ntransitions; i++)
		edge(d, from, rule->event, &rule->transitions[i]);
}

/* Lines inside a state: entry and exit effects, timers, postponed events */
static void
state_lines(Diagram *d, const MdState *s, List **lines)
{
	StringInfoData line;

	for (int i = 0; i < s->nentry; i++)
	{
		initStringInfo(&line);
		appendStringInfo(&line, "entry / %s", function_name(d, s->entry[i]));
		*lines = lappend(*lines, line.data);
	}
	for (int i = 0; i < s->nexit; i++)
	{
		initStringInfo(&line);
		appendStringInfo(&line, "exit / %s", function_name(d, s->exit[i]));
		*lines = lappend(*lines, line.data);
	}
	for (int i = 0; i < s->ntimers; i++)
	{
		initStringInfo(&line);
		appendStringInfo(&line, "after %s / %s", s->timers[i].delay,
						 s->timers[i].event_tag);
		*lines = lappend(*lines, line.data);
	}
	if (s->npostpone > 0)
	{
		initStringInfo(&line);
		appendStringInfoString(&line, "postpone");
		for (int i = 0; i < s->npostpone; i++)
			appendStringInfo(&line, "%s %s", i > 0 ? "," : "", s->postpone[i]);
		*lines = lappend(*lines, line.data);
	}
}

static void
declare_states(Diagram *d)
{
	const MachineDef *def = d->def;

	for (int k = 0; k < def->nstates; k++)
	{
		int			i = d->order[k];
		const MdState *s = &def->states[i];
		List	   *lines = NIL;
		ListCell   *lc;

		state_lines(d, s, &lines);
		if (d->format == DIAGRAM_DOT)
		{
			appendStringInfo(&d->out, "  s%d [label=\"", i);
			put_text(d, s->name);
			foreach(lc, lines)
			{
				appendStringInfoString(&d->out, "\\n");
				put_text(d, lfirst(lc));
			}
			appendStringInfo(&d->out, "\"%s];\n", s->final ? ", peripheries=2" : "");
			continue;
		}
		if (d->aliases)
		{
			appendStringInfoString(&d->out, "    state \"");
			put_text(d, s->name);
			appendStringInfo(&d->out, "\" as s%d\n", i);
		}
		foreach(lc, lines)
		{
			appendStringInfoString(&d->out, "    ");
			state_ref(d, i);
			appendStringInfoString(&d->out, " : ");
			put_text(d, lfirst(lc));
			appendStringInfoChar(&d->out, '\n');
		}
	}
}

static void
transitions(Diagram *d)
{
	const MachineDef *def = d->def;

	for (int k = 0; k < def->nstates; k++)
	{
		int			i = d->order[k];
		const MdState *s = &def->states[i];

		for (int r = 0; r < s->nrules; r++)
			rule_edges(d, i, &s->rules[r]);
		if (s->final)
			continue;
		for (int r = 0; r < def->nany; r++)
			if (md_state_rule(def, i, def->any[r].event) == &def->any[r])
				rule_edges(d, i, &def->any[r]);
	}
}

static void
visit(const MachineDef *def, int state, bool *seen, int *order, int *n)
{
	if (state >= 0 && !seen[state])
	{
		seen[state] = true;
		order[(*n)++] = state;
	}
}

static void
visit_rule(const MachineDef *def, const MdRule *rule, bool *seen, int *order,
		   int *n)
{
	for (int t = 0; t < rule->ntransitions; t++)
		visit(def, rule->transitions[t].target, seen, order, n);
}

/*
 * The order to draw states in: breadth first from the initial state, then
 * any that no transition reaches, so that Graphviz lays the machine out
 * from left to right as events take it.
 */
static int *
draw_order(const MachineDef *def)
{
	int		   *order = palloc(sizeof(int) * def->nstates);
	bool	   *seen = palloc0(sizeof(bool) * def->nstates);
	int			n = 0;

	visit(def, def->initial, seen, order, &n);
	for (int next = 0; next < def->nstates; next++)
	{
		const MdState *s;

		if (next == n)
			for (int i = 0; i < def->nstates && next == n; i++)
				visit(def, i, seen, order, &n);
		s = &def->states[order[next]];
		for (int r = 0; r < s->nrules; r++)
			visit_rule(def, &s->rules[r], seen, order, &n);
		if (!s->final)
			for (int r = 0; r < def->nany; r++)
				visit_rule(def, &def->any[r], seen, order, &n);
	}
	pfree(seen);
	return order;
}

static char *
draw(const char *name, const MachineDef *def, DiagramFormat format)
{
	Diagram		d;

	d.def = def;
	d.format = format;
	d.nchoices = 0;
	d.order = draw_order(def);
	d.aliases = false;
	for (int i = 0; i < def->nstates; i++)
		if (!mermaid_plain(def->states[i].name))
			d.aliases = true;
	initStringInfo(&d.out);

	if (format == DIAGRAM_DOT)
	{
		appendStringInfoString(&d.out, "digraph \"");
		dot_text(&d.out, name);
		appendStringInfoString(&d.out, "\" {\n"
							   "  rankdir=LR;\n"
							   "  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];\n"
							   "  edge [fontname=\"Helvetica\", fontsize=9];\n"
							   "  start [shape=point, width=0.15, label=\"\"];\n");
		declare_states(&d);
		appendStringInfo(&d.out, "  start -> s%d;\n", def->initial);
		transitions(&d);
		appendStringInfoString(&d.out, "}\n");
	}
	else
	{
		appendStringInfoString(&d.out, "stateDiagram-v2\n");
		declare_states(&d);
		appendStringInfoString(&d.out, "    [*] --> ");
		state_ref(&d, def->initial);
		appendStringInfoChar(&d.out, '\n');
		transitions(&d);
		for (int k = 0; k < def->nstates; k++)
			if (def->states[d.order[k]].final)
			{
				appendStringInfoString(&d.out, "    ");
				state_ref(&d, d.order[k]);
				appendStringInfoString(&d.out, " --> [*]\n");
			}
	}
	return d.out.data;
}

/*
 * machine_diagram(name text, format text DEFAULT 'mermaid') RETURNS text
 *
 * The machine's current revision drawn as a Mermaid stateDiagram-v2 or a
 * Graphviz DOT digraph.  Nothing of the machine runs.
 */
PG_FUNCTION_INFO_V1(machine_diagram);
Datum
machine_diagram(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *format_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	DiagramFormat format;
	Jsonb	   *definition;
	char	   *json;
	MachineDef *def;
	char		errbuf[512];
	char	   *volatile result = NULL;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;

	if (strcmp(format_name, "mermaid") == 0)
		format = DIAGRAM_MERMAID;
	else if (strcmp(format_name, "dot") == 0)
		format = DIAGRAM_DOT;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown diagram format \"%s\"", format_name),
				 errdetail("Machines are drawn as Mermaid state diagrams or Graphviz digraphs."),
				 errhint("Use 'mermaid' or 'dot'.")));

	/*
	 * Drawn from the stored definition, compiled here: a machine whose
	 * functions were dropped can still be drawn.
	 */
	SPI_connect();
	machine_authorize_by_name(name, MACHINE_READ);
	definition = store_machine_definition(name);
	if (definition == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("machine \"%s\" does not exist", name)));
	json = JsonbToCString(NULL, &definition->root, VARSIZE(definition));
	def = md_compile(json, strlen(json), errbuf, sizeof(errbuf));
	if (def == NULL)
		elog(ERROR, "stored definition of machine \"%s\" does not compile: %s",
			 name, errbuf);
	old = MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		result = draw(name, def, format);
	}
	PG_FINALLY();
	{
		md_free(def);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	SPI_finish();

	PG_RETURN_TEXT_P(cstring_to_text(result));
}
