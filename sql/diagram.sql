-- machine_diagram: a machine as a Mermaid state diagram or a Graphviz digraph

CREATE SCHEMA shopd;
CREATE FUNCTION shopd.covers_total(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'amount')::numeric >= (state->>'total')::numeric $$;
CREATE FUNCTION shopd.record_payment(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('paid', event->'amount') $$;
CREATE FUNCTION shopd.announce(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION shopd.route(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || '{"_tag": "Paid"}' $$;

-- the demo's order machine, with a timer and a handler that picks the state
SELECT machine_define('diagram_order', '{
  "initial": "Pending",
  "states": {
    "Pending":   {"on": {"Pay":  [{"target": "Paid", "guard": "shopd.covers_total",
                                   "handler": "shopd.record_payment"},
                                  {"target": "Rejected"}],
                         "Note": {"target": "Pending", "merge": true},
                         "Route": {"handler": "shopd.route"}},
                  "after": [{"delay": "30 minutes", "event": {"_tag": "Cancel"}}]},
    "Paid":      {"on": {"Ship": "Shipped"}, "entry": ["shopd.announce"], "exit": ["shopd.announce"]},
    "Shipped":   {"final": true, "entry": ["shopd.announce"]},
    "Cancelled": {"final": true, "entry": ["shopd.announce"]},
    "Rejected":  {"final": true, "entry": ["shopd.announce"]}
  },
  "any":         {"Cancel": "Cancelled"},
  "events":      {"Pay": {"amount": "number"}, "Note": {"text": "string"}}
}');
SELECT machine_diagram('diagram_order');
SELECT machine_diagram('diagram_order', 'dot');

-- names that are not plain identifiers are declared with aliases and escaped
SELECT machine_define('diagram odd', '{
  "initial": "state",
  "states": {
    "state": {"on": {"Go \"now\"; #1": "Two: [b]"}},
    "Two: [b]": {"on": {"back\\slash": "state"}, "final": false}
  }
}');
SELECT machine_diagram('diagram odd', 'mermaid');
SELECT machine_diagram('diagram odd', 'dot');

-- bad input
SELECT machine_diagram('diagram_order', 'svg');
SELECT machine_diagram('nope');
SELECT machine_diagram(NULL) IS NULL AS strict;

-- Every machine the tests before this one defined (this test runs late):
-- Graphviz accepts each digraph without a warning, and each Mermaid line is
-- one of the forms that Mermaid's state diagram grammar parses, with user
-- text escaped
SELECT count(*) >= 30 AS many_machines FROM machine.machines;
\pset tuples_only on
\pset format unaligned
SELECT string_agg(machine_diagram(name, 'dot'), E'\n' ORDER BY name) FROM machine.machines
\g |dot -Tsvg 2>&1 >/dev/null && echo "dot accepts every digraph"
\pset tuples_only off
\pset format aligned
WITH forms AS (
	SELECT '([A-Za-z][A-Za-z0-9_]*|choice__[0-9]+)' AS id,
	       '( |[^ ;#:"<>{}\[\]]|#[a-z0-9]+;)+' AS label
)
SELECT m.name, line
  FROM machine.machines m, forms,
       LATERAL regexp_split_to_table(machine_diagram(m.name, 'mermaid'), E'\n') AS line
 WHERE line <> ''
   AND line !~ ('^(stateDiagram-v2'
                '|    \[\*\] --> ' || id ||
                '|    ' || id || ' --> (' || id || '|\[\*\])( : ' || label || ')?' ||
                '|    state "' || label || '" as s[0-9]+' ||
                '|    state choice__[0-9]+ <<choice>>' ||
                '|    ' || id || ' : ' || label || ')$');
