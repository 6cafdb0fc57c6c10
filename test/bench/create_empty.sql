-- test/bench/create_empty.sql: an empty public.t with its primary key, for the write measurements.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP TABLE IF EXISTS public.t CASCADE;
CREATE TABLE public.t (id bigint PRIMARY KEY, cents int NOT NULL, payload text);
