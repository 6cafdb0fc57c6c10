-- test/bench/load.sql: a fresh public.t of :rows rows, vacuumed, analysed and checkpointed, so that
-- every measurement starts from the same state.  Values are deterministic.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP TABLE IF EXISTS public.t CASCADE;
CREATE TABLE public.t (id bigint NOT NULL, cents int NOT NULL, payload text);
INSERT INTO public.t (id, cents, payload)
SELECT i, ((i * 7919) % 100000)::int, md5(i::text) FROM generate_series(1::bigint, :rows) AS i;
ALTER TABLE public.t ADD PRIMARY KEY (id);
VACUUM (ANALYZE) public.t;
CHECKPOINT;
