# expand_contract: PGXS build.
#
#   make && make install        build and install into the pg_config in PATH (or PG_CONFIG=...)
#   make test                   install what is missing, build, run every suite (scripts/test.sh)
#   make demo                   throwaway cluster, live migration under traffic (scripts/demo.sh)
#   make sanitize               regress + isolation under an ASan/UBSan build (scripts/sanitize.sh)
#   make installcheck           pg_regress (sql/), isolation (test/specs) and TAP (test/t) suites,
#                               each on its own temporary instance; run as a non-root user

EXTENSION   = expand_contract
MODULE_big  = expand_contract
OBJS        = $(patsubst %.c,%.o,$(wildcard src/*.c src/ops/*.c))
DATA        = $(wildcard sql/$(EXTENSION)--*.sql)
PGFILEDESC  = "expand_contract - zero-downtime schema migrations"

REGRESS     = api create_table add_column drop_column rename_column alter_column \
              rename_table drop_table raw_sql compose new_version_writes user_triggers errors privileges fuzz
REGRESS     += create_index drop_index
REGRESS     += rename_constraint set_replica_identity pgroll_compat
REGRESS     += expressions
REGRESS     += create_constraint drop_constraint
REGRESS     += carry_constraints
REGRESS     += carry_indexes
REGRESS     += carry_views
REGRESS     += carry_foreign_keys
REGRESS     += compose_column carry_identity
REGRESS     += partitioned
REGRESS     += plan
REGRESS     += revert
REGRESS     += rerun
REGRESS     += publications
REGRESS     += ddl_guard
REGRESS_OPTS = --inputdir=. --temp-instance=tmp_regress --temp-config=test/regress.conf --load-extension=$(EXTENSION)

ISOLATION_SPECS = $(wildcard test/specs/*.spec)
ISOLATION   = $(patsubst test/specs/%.spec,%,$(ISOLATION_SPECS))
ISOLATION_OPTS = --inputdir=test --temp-instance=tmp_iso --temp-config=test/regress.conf --load-extension=$(EXTENSION)

TAP_TESTS   = 1
PROVE_TESTS = $(wildcard test/t/*.pl)

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS   = -Wall -Wmissing-prototypes -Wpointer-arith -Werror=vla -Wendif-labels -Wformat-security

EXTRA_CLEAN = tmp_check tmp_regress tmp_iso results output_iso log regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared headers (PGXS only tracks the .c files).
$(OBJS): $(wildcard src/*.h)

.PHONY: test demo bench sanitize
test:
	bash scripts/test.sh
demo:
	bash scripts/demo.sh
bench:
	bash scripts/bench.sh
sanitize:
	bash scripts/sanitize.sh
