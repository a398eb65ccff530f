# machine: durable actors inside PostgreSQL (PGXS build)

EXTENSION = machine machine_router
MODULE_big = machine
# the router's library: the slice hash (the routing is PL/Proxy's)
MODULES = src/machine_router
OBJS = \
	src/definition/definition.o \
	src/definition/definition_arena.o \
	src/definition/definition_error.o \
	src/definition/definition_interval.o \
	src/define.o \
	src/diagram.o \
	src/machine.o \
	src/maintenance.o \
	src/registry.o \
	src/values.o \
	src/transition.o \
	src/store.o \
	src/store_direct.o \
	src/store_compact.o \
	src/store_machines.o \
	src/store_timers.o \
	src/memory.o \
	src/adapter.o \
	src/send.o \
	src/send_many.o \
	src/served.o \
	src/actors.o \
	src/entity.o \
	src/fold.o \
	src/restore.o \
	src/check.o \
	src/dependencies.o \
	src/migrate.o \
	src/compact.o \
	src/simulate.o \
	src/slice.o \
	src/subscriptions.o \
	src/subtransaction.o \
	src/timers.o \
	src/worker.o

DATA = $(wildcard sql/machine--*.sql) $(wildcard sql/machine_router--*.sql)

PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers
# the definition compiler (json-c and libc only) has a folder of its own
PG_CPPFLAGS = -I$(srcdir)/src/definition
SHLIB_LINK = -ljson-c

REGRESS = definitions revisions check_define dependencies migrate compact send send_many persistence conflicts restore replay view simulate timers can spawn subscriptions clock postpone diagram privileges security slice entity adapters
# the router suite makes databases of its own and needs PL/Proxy; on a line
# of its own so that test/valgrind/run (which reads the line above) leaves
# out its minutes of PL/Proxy under valgrind
REGRESS += router
REGRESS_OPTS = --load-extension=machine

ISOLATION = send_order send_many_order expected_version_race persist_vs_send redefine_vs_send notify define_denied_no_lock recreate_vs_send define_other_machine compact_vs_send journal_order entity_first_message idempotent_race spawn_across_adapters subscription_order subscription_members postpone_order subscription_wake cancel_vs_claim spaced_vs_pass
# later options win: specs and their expected output live under test/isolation
ISOLATION_OPTS = --load-extension=machine \
	--inputdir=test/isolation --outputdir=test/isolation/output_iso
EXTRA_CLEAN = test/isolation/output_iso

PROVE_TESTS = $(wildcard test/t/*.pl)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: unit
unit:
	$(MAKE) -C test/unit check

# PGXN distribution: machine-<version>.zip of the committed tree (HEAD), the
# version read from META.json.  DISTFILE names another output file.
DISTVERSION = $(shell perl -MJSON::PP -0777 -ne 'print decode_json($$_)->{version}' META.json)
DISTFILE = machine-$(DISTVERSION).zip

.PHONY: dist
dist:
	git archive --format=zip --prefix=machine-$(DISTVERSION)/ -o $(DISTFILE) HEAD
