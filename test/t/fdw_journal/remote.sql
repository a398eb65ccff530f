-- The remote side of the fdw_journal adapter: plain tables on the server
-- that keeps the journal and the snapshots (no extension needed there).
-- Their primary keys make a taken version a unique_violation, which the
-- extension turns into its version conflict.

CREATE TABLE machine_journal (
	actor_id text NOT NULL,
	version bigint NOT NULL,
	event jsonb NOT NULL,
	state_tag text NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (actor_id, version)
);

CREATE TABLE machine_snapshots (
	actor_id text NOT NULL,
	version bigint NOT NULL,
	state jsonb NOT NULL,
	state_tag text NOT NULL,
	taken_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (actor_id, version)
);
