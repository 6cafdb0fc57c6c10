-- test/bench/load_text.sql: the table of issue 11's text -> bigint measurement, a fresh
-- public.t(id bigint primary key, a text not null, b text) of :rows rows whose "a" holds integers as
-- text, vacuumed, analysed and checkpointed like load.sql.  Values are deterministic.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP TABLE IF EXISTS public.t CASCADE;
CREATE TABLE public.t (id bigint NOT NULL, a text NOT NULL, b text);
INSERT INTO public.t (id, a, b)
SELECT i, (i * 7919)::text, md5(i::text) FROM generate_series(1::bigint, :rows) AS i;
ALTER TABLE public.t ADD PRIMARY KEY (id);
VACUUM (ANALYZE) public.t;
CHECKPOINT;
