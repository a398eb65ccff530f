/*-------------------------------------------------------------------------
 *
 * tables.h
 *	  Column numbers of the tables the per-send path reads and writes
 *	  directly (see store_direct.c), in the manner of the catalog headers.
 *	  They must follow sql/machine--1.1.sql; store_direct.c checks the
 *	  columns' names and types when it opens a table and falls back to SQL
 *	  if they differ.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_TABLES_H
#define MACHINE_TABLES_H

/* machine.instances */
#define Natts_instances						10
#define Anum_instances_actor_id				1
#define Anum_instances_machine				2
#define Anum_instances_status				3
#define Anum_instances_version				4
#define Anum_instances_state				5
#define Anum_instances_state_tag			6
#define Anum_instances_initial_state		7
#define Anum_instances_created_at			8
#define Anum_instances_last_activity_at		9
#define Anum_instances_journal_txid			10

/* machine.events */
#define Natts_events						9
#define Anum_events_actor_id				1
#define Anum_events_version					2
#define Anum_events_event					3
#define Anum_events_state_tag				4
#define Anum_events_recorded_at				5
#define Anum_events_position				6
#define Anum_events_txid					7
#define Anum_events_revision				8
#define Anum_events_idempotency_key		9

/* machine.snapshots */
#define Natts_snapshots						5
#define Anum_snapshots_actor_id				1
#define Anum_snapshots_version				2
#define Anum_snapshots_state				3
#define Anum_snapshots_state_tag			4
#define Anum_snapshots_taken_at				5

/* machine.timers */
#define Natts_timers						8
#define Anum_timers_timer_id				1
#define Anum_timers_actor_id				2
#define Anum_timers_armed_version			3
#define Anum_timers_seq						4
#define Anum_timers_state_tag				5
#define Anum_timers_event					6
#define Anum_timers_due_at					7
#define Anum_timers_armed_by				8

#endif							/* MACHINE_TABLES_H */
