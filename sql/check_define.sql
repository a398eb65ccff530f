-- machine_check_define: what a redefinition would break, before it is made

CREATE SCHEMA ck;
GRANT USAGE ON SCHEMA ck TO PUBLIC;
CREATE FUNCTION ck.error_of(statement text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	state text;
	message text;
	detail text;
	hint text;
BEGIN
	EXECUTE statement;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	RETURN state || ': ' || message || coalesce(' / ' || nullif(detail, ''), '')
		|| coalesce(' / ' || nullif(hint, ''), '');
END $$;
CREATE FUNCTION ck.enough(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'amount')::numeric >= 10 $$;
CREATE FUNCTION ck.never(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT false $$;
CREATE FUNCTION ck.add(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('paid', (event->>'amount')::numeric) $$;
-- fails for large amounts only
CREATE FUNCTION ck.picky(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	IF (event->>'amount')::numeric > 50 THEN
		RAISE EXCEPTION 'amount % is too large', event->>'amount'
			USING ERRCODE = 'P0001';
	END IF;
	RETURN state;
END $$;
-- writes as it folds: the check must leave nothing behind
CREATE TABLE ck.written (actor text);
CREATE FUNCTION ck.writer(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO ck.written VALUES (state->>'_tag');
	RETURN state;
END $$;
-- the candidate definitions: revision 1 with a few things changed
CREATE FUNCTION ck.def(pay jsonb DEFAULT '[{"target": "Paid", "guard": "ck.enough", "handler": "ck.add"}, {"target": "Open"}]',
                       ship text DEFAULT 'Shipped', extra jsonb DEFAULT '{}', persistence jsonb DEFAULT '{"snapshotSchedule": "never"}')
RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object(
	  'initial', 'Open',
	  'states', jsonb_build_object(
	      'Open', jsonb_build_object('on', jsonb_build_object('Pay', pay, 'Cancel', 'Cancelled')),
	      'Paid', jsonb_build_object('on', jsonb_build_object('Ship', ship)),
	      ship, jsonb_build_object('final', true),
	      'Cancelled', jsonb_build_object('final', true)) || extra)
	  || CASE WHEN persistence IS NULL THEN '{}'
	          ELSE jsonb_build_object('persistence', persistence) END
$$;

SELECT machine_define('ck', ck.def());
SELECT machine_spawn('ck-1', 'ck'), machine_spawn('ck-2', 'ck'), machine_spawn('ck-3', 'ck'),
       machine_spawn('ck-4', 'ck'), machine_spawn('ck-5', 'ck');
SELECT machine_send('ck-1', '{"_tag": "Pay", "amount": 20}') ->> '_tag',
       machine_send('ck-1', '{"_tag": "Ship"}') ->> '_tag';
SELECT machine_send('ck-2', '{"_tag": "Pay", "amount": 5}') ->> '_tag',
       machine_send('ck-2', '{"_tag": "Pay", "amount": 80}') ->> '_tag';
SELECT machine_send('ck-4', '{"_tag": "Pay", "amount": 30}') ->> '_tag', machine_stop('ck-4');
SELECT machine_send('ck-5', '{"_tag": "Pay", "amount": 10}') ->> '_tag',
       machine_rewind('ck-5', 0) ->> '_tag';
SELECT id, state_tag, status, version FROM machine.actors WHERE machine = 'ck' ORDER BY id;

-- the same definition breaks nothing
SELECT * FROM machine_check_define('ck', ck.def());
-- another name for the last state: the actors that reached it are listed,
-- the live one for its state as well
SELECT * FROM machine_check_define('ck', ck.def(ship => 'Sent')) ORDER BY 1, 2, 3;
-- a guard that never passes: every Pay that was taken fails
SELECT * FROM machine_check_define('ck', ck.def(pay => '{"target": "Paid", "guard": "ck.never"}')) ORDER BY 1, 2;
-- Pay no longer handled at all in Open
SELECT * FROM machine_check_define('ck', ck.def(pay => '"Cancelled"')) ORDER BY 1, 2;
-- a handler that raises an error for one actor's event: that actor gets
-- the error, the others are still checked
SELECT * FROM machine_check_define('ck', ck.def(
	pay => '[{"target": "Paid", "guard": "ck.enough", "handler": "ck.picky"}, {"target": "Open"}]')) ORDER BY 1, 2;
-- a handler that writes: the check runs it and keeps nothing
SELECT * FROM machine_check_define('ck', ck.def(
	pay => '[{"target": "Paid", "guard": "ck.enough", "handler": "ck.writer"}, {"target": "Open"}]')) ORDER BY 1, 2;
SELECT count(*) AS written FROM ck.written;
-- nothing changed: same revision, same actors, same journal
SELECT revision FROM machine.definitions WHERE name = 'ck';
SELECT count(*) FROM machine.events WHERE actor_id LIKE 'ck-%';

-- many actors are checked in chunks; an error in one chunk is found for
-- its actor, and the rest of that chunk and the next chunks go on
SELECT count(machine_spawn('ckm-' || i, 'ck')) FROM generate_series(1, 1200) i;
SELECT count(machine_send('ckm-' || i, jsonb_build_object('_tag', 'Pay',
             'amount', CASE WHEN i % 400 = 0 THEN 90 ELSE 20 END)))
  FROM generate_series(1, 1200) i;
SELECT * FROM machine_check_define('ck', ck.def(
	pay => '[{"target": "Paid", "guard": "ck.enough", "handler": "ck.picky"}, {"target": "Open"}]')) ORDER BY 1, 2;
SELECT count(*) FROM machine_check_define('ck', ck.def(pay => '"Cancelled"'));
SELECT count(machine_delete('ckm-' || i)) FROM generate_series(1, 1200) i;

-- a journal with a hole, and one that starts after a snapshot
DELETE FROM machine.events WHERE actor_id = 'ck-2' AND version = 1;
SELECT * FROM machine_check_define('ck', ck.def()) ORDER BY 1, 2;
SELECT machine_persist('ck-1');
DELETE FROM machine.events WHERE actor_id = 'ck-1';
SELECT * FROM machine_check_define('ck', ck.def()) ORDER BY 1, 2;
SELECT * FROM machine_check_define('ck', ck.def(ship => 'Sent')) ORDER BY 1, 2;

-- a machine without persistence: only live states are checked
SELECT machine_define('ck_transient', ck.def(persistence => NULL));
SELECT machine_spawn('ckt-1', 'ck_transient'),
       machine_send('ckt-1', '{"_tag": "Pay", "amount": 20}') ->> '_tag';
SELECT * FROM machine_check_define('ck_transient', ck.def(pay => '"Cancelled"', persistence => NULL));
SELECT * FROM machine_check_define('ck_transient',
	ck.def(pay => '"Cancelled"', persistence => NULL) #- '{states,Paid}' #- '{states,Shipped}');

-- the actors of the "memory" adapter are checked where they live
SELECT machine_define('ck_memory', ck.def(persistence => '{"adapter": "memory"}'));
SELECT machine_spawn('ckmem-1', 'ck_memory'),
       machine_send('ckmem-1', '{"_tag": "Pay", "amount": 20}') ->> '_tag';
SELECT * FROM machine_check_define('ck_memory', ck.def(persistence => '{"adapter": "memory"}'));
SELECT * FROM machine_check_define('ck_memory', ck.def(pay => '"Cancelled"', persistence => '{"adapter": "memory"}'));
SELECT machine_drop('ck_memory', true);

-- a machine that does not exist yet: the candidate is only validated
SELECT * FROM machine_check_define('ck_new', ck.def());

-- bad candidates are refused as machine_define refuses them
SELECT ck.error_of($$SELECT * FROM machine_check_define('ck', '{"initial": "Nope", "states": {"A": {}}}')$$);
SELECT ck.error_of($$SELECT * FROM machine_check_define('ck', ck.def(pay => '{"target": "Paid", "guard": "ck.missing"}'))$$);
SELECT ck.error_of($$SELECT * FROM machine_check_define('ck', NULL)$$);
SELECT ck.error_of($$SELECT * FROM machine_check_define(NULL, '{}')$$);
SELECT ck.error_of($$SELECT * FROM machine_check_define('', ck.def())$$);

-- privileges: checking needs the "define" privilege on the machine, and
-- EXECUTE on the candidate's functions
CREATE ROLE regress_ck_reader;
CREATE ROLE regress_ck_definer;
SELECT machine_grant('ck', 'regress_ck_reader', 'read');
SELECT machine_grant('ck', 'regress_ck_definer', 'define');
SET ROLE regress_ck_reader;
SELECT ck.error_of($$SELECT * FROM machine_check_define('ck', ck.def())$$);
RESET ROLE;
SET ROLE regress_ck_definer;
SELECT count(*) FROM machine_check_define('ck', ck.def());
RESET ROLE;
REVOKE EXECUTE ON FUNCTION ck.never(jsonb, jsonb) FROM PUBLIC;
SET ROLE regress_ck_definer;
SELECT ck.error_of($$SELECT * FROM machine_check_define('ck', ck.def(pay => '{"target": "Paid", "guard": "ck.never"}'))$$);
RESET ROLE;

SELECT machine_drop('ck', true), machine_drop('ck_transient', true);
DROP ROLE regress_ck_reader, regress_ck_definer;
DROP SCHEMA ck CASCADE;
