-- Dependencies: a function that a machine's current revision uses cannot
-- be dropped, renamed or moved away; the error names the machine

CREATE SCHEMA dep;
CREATE FUNCTION dep.ok(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT true $$;
-- an overload of another signature, which no machine uses
CREATE FUNCTION dep.ok(state jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION dep.keep(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state $$;
CREATE FUNCTION dep.note(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION dep.unused(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state $$;

SELECT machine_define('dep_m', '{
  "initial": "A",
  "states": {"A": {"on": {"Go": {"target": "B", "guard": "dep.ok", "handler": "dep.keep"}},
                   "exit": ["dep.note"]},
             "B": {}}
}');

-- dropping a guard, a handler or an effect is refused, naming the machine
DROP FUNCTION dep.ok(jsonb, jsonb);
DROP FUNCTION dep.keep(jsonb, jsonb);
DROP FUNCTION dep.note(text, jsonb, jsonb);
-- also through a cascade
DROP SCHEMA dep CASCADE;
-- renaming it away, or moving it to another schema, likewise
ALTER FUNCTION dep.keep(jsonb, jsonb) RENAME TO keep2;
CREATE SCHEMA dep_other;
ALTER FUNCTION dep.keep(jsonb, jsonb) SET SCHEMA dep_other;
ALTER SCHEMA dep RENAME TO dep_renamed;
-- replacing it with another signature is a drop first
BEGIN;
DROP FUNCTION dep.keep(jsonb, jsonb);
ROLLBACK;
-- the machine still works
SELECT machine_spawn('dep-1', 'dep_m');
SELECT machine_send('dep-1', '{"_tag": "Go"}');

-- what no machine uses goes as before: another overload, another function,
-- other changes to a used function
DROP FUNCTION dep.ok(jsonb);
DROP FUNCTION dep.unused(jsonb, jsonb);
CREATE OR REPLACE FUNCTION dep.keep(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || '{"kept": true}' $$;
ALTER FUNCTION dep.keep(jsonb, jsonb) STABLE;
DROP TABLE IF EXISTS dep.nothing;
CREATE TABLE dep.t (x int);
DROP TABLE dep.t;

-- a redefinition without the function releases it; the older revision
-- that used it is history and holds nothing
SELECT machine_define('dep_m', '{
  "initial": "A",
  "states": {"A": {"on": {"Go": {"target": "B", "guard": "dep.ok"}}}, "B": {}}
}');
DROP FUNCTION dep.keep(jsonb, jsonb);
DROP FUNCTION dep.note(text, jsonb, jsonb);
DROP FUNCTION dep.ok(jsonb, jsonb);

-- two machines: the first one found is named
SELECT machine_define('dep_n', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "guard": "dep.ok"}}}}}');
DROP FUNCTION dep.ok(jsonb, jsonb);

-- a migration and an upcaster are held like the others
CREATE FUNCTION dep.same(state jsonb, revision integer) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state $$;
SELECT machine_define('dep_n', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "guard": "dep.ok"}}}},
                                 "migrate": "dep.same", "upcast": "dep.same"}');
DROP FUNCTION dep.same(jsonb, integer);

-- dropping the machines releases the functions
SELECT machine_drop('dep_m', cascade => true), machine_drop('dep_n');
DROP FUNCTION dep.ok(jsonb, jsonb), dep.same(jsonb, integer);

-- the trigger function is for event triggers only
SELECT machine.functions_changed();
DROP SCHEMA dep, dep_other CASCADE;
