-- fdw_journal: a user adapter of the machine extension that keeps a
-- machine's journal and snapshots on another PostgreSQL server, through
-- postgres_fdw.  Run remote.sql on that server first, then this script
-- with psql, as a superuser, on the server of the extension:
--
--   psql -v remote_host=... -v remote_port=5432 -v remote_db=journal \
--        -v remote_user=... -f local.sql
--
-- and define machines with "persistence": {"adapter": "fdw_journal"}.
--
-- The functions are SECURITY DEFINER (with a pinned search_path), so that
-- the roles that send need no user mapping of their own and no privilege
-- on the foreign tables: EXECUTE on the functions is what they are
-- granted (here PUBLIC keeps it; revoke it and grant it to the roles that
-- use the machines if you prefer).
--
-- What it trades: postgres_fdw commits the remote transaction just before
-- the local one.  A failure of the remote server fails the send before
-- anything is committed on either side; a crash between the two commits
-- can leave a journal row (of the version the send would have made) that
-- the local actor never reached, and the next send of that actor then
-- meets a version conflict until the stray row is deleted.

CREATE EXTENSION IF NOT EXISTS postgres_fdw;

CREATE SERVER fdw_journal_server FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host :'remote_host', port :'remote_port', dbname :'remote_db');
CREATE USER MAPPING FOR CURRENT_USER SERVER fdw_journal_server
	OPTIONS (user :'remote_user');

CREATE SCHEMA fdw_journal;

CREATE FOREIGN TABLE fdw_journal.journal (
	actor_id text NOT NULL,
	version bigint NOT NULL,
	event jsonb NOT NULL,
	state_tag text NOT NULL,
	recorded_at timestamptz NOT NULL
) SERVER fdw_journal_server OPTIONS (schema_name 'public', table_name 'machine_journal');

CREATE FOREIGN TABLE fdw_journal.snapshots (
	actor_id text NOT NULL,
	version bigint NOT NULL,
	state jsonb NOT NULL,
	state_tag text NOT NULL,
	taken_at timestamptz NOT NULL
) SERVER fdw_journal_server OPTIONS (schema_name 'public', table_name 'machine_snapshots');

CREATE FUNCTION fdw_journal.append_event(actor_id text, version bigint, event jsonb, state_tag text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO fdw_journal.journal (actor_id, version, event, state_tag, recorded_at)
	VALUES ($1, $2, $3, $4, pg_catalog.now())
$$;

CREATE FUNCTION fdw_journal.load_events(actor_id text, after_version bigint, upto_version bigint)
RETURNS TABLE (version bigint, event jsonb, state_tag text, recorded_at timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	SELECT j.version, j.event, j.state_tag, j.recorded_at
	  FROM fdw_journal.journal j
	 WHERE j.actor_id = $1 AND j.version > $2 AND j.version <= $3
	 ORDER BY j.version
$$;

CREATE FUNCTION fdw_journal.save_snapshot(actor_id text, version bigint, state jsonb, state_tag text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO fdw_journal.snapshots (actor_id, version, state, state_tag, taken_at)
	VALUES ($1, $2, $3, $4, pg_catalog.now())
	ON CONFLICT DO NOTHING
$$;

CREATE FUNCTION fdw_journal.load_snapshot(actor_id text, max_version bigint,
										  OUT version bigint, OUT state jsonb)
RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	SELECT s.version, s.state
	  FROM fdw_journal.snapshots s
	 WHERE s.actor_id = $1 AND s.version <= $2
	 ORDER BY s.version DESC
	 LIMIT 1
$$;

CREATE FUNCTION fdw_journal.delete_actor(actor_id text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	DELETE FROM fdw_journal.journal j WHERE j.actor_id = $1;
	DELETE FROM fdw_journal.snapshots s WHERE s.actor_id = $1;
$$;
