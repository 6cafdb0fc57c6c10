\set cents random(0, 99999)
INSERT INTO t (id, cents, payload) VALUES (nextval('bench.ins_seq'), :cents, md5(:cents::text));
