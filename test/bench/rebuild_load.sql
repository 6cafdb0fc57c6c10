-- test/bench/rebuild_load.sql: the headline migration's tables (issue 10), freshly loaded, vacuumed,
-- analysed and checkpointed.  Variables: accounts, transfers (row counts).  Values are deterministic.
--   accounts  (id integer PRIMARY KEY, email UNIQUE, branch, balance, payload)
--             accounts_branch_idx (branch) INCLUDE (id): a secondary index the migration rebuilds
--   transfers (id bigint PRIMARY KEY, account_id integer REFERENCES accounts, amount, created, ref)
--             transfers_account_ref_key UNIQUE (account_id, ref) and transfers_account_created_idx
--             (account_id, created): a unique and a secondary index the migration rebuilds
-- Offline, ALTER TABLE ... TYPE rewrites both tables and rebuilds all seven indexes and the foreign
-- key; the migration rebuilds the four that contain a retyped column and re-points the foreign key.
-- Indexes and constraints are added after the rows, as a restore would.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP TABLE IF EXISTS public.transfers, public.accounts CASCADE;
CREATE TABLE public.accounts (id integer NOT NULL, email text NOT NULL, branch int NOT NULL,
                              balance bigint NOT NULL, payload text);
INSERT INTO public.accounts (id, email, branch, balance, payload)
SELECT i, 'a' || i || '@bank.test', i % 1000, 1000, md5(i::text) FROM generate_series(1, :accounts) AS i;
ALTER TABLE public.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);
ALTER TABLE public.accounts ADD CONSTRAINT accounts_email_key UNIQUE (email);
CREATE INDEX accounts_branch_idx ON public.accounts (branch) INCLUDE (id);
CREATE TABLE public.transfers (id bigint NOT NULL, account_id integer NOT NULL, amount int NOT NULL,
                               created timestamptz NOT NULL DEFAULT now(), ref text NOT NULL);
-- Each transfer of a pseudo-random account (7919 is prime: every account gets its share).
INSERT INTO public.transfers (id, account_id, amount, created, ref)
SELECT i, ((i * 7919) % :accounts) + 1, (i * 37) % 1000 + 1,
       timestamptz '2024-01-01 00:00+00' + i * interval '1 second', 'r' || i
  FROM generate_series(1::bigint, :transfers) AS i;
ALTER TABLE public.transfers ADD CONSTRAINT transfers_pkey PRIMARY KEY (id);
ALTER TABLE public.transfers ADD CONSTRAINT transfers_account_ref_key UNIQUE (account_id, ref);
CREATE INDEX transfers_account_created_idx ON public.transfers (account_id, created);
ALTER TABLE public.transfers ADD CONSTRAINT transfers_account_id_fkey
    FOREIGN KEY (account_id) REFERENCES public.accounts (id);
VACUUM (ANALYZE) public.accounts;
VACUUM (ANALYZE) public.transfers;
CHECKPOINT;
