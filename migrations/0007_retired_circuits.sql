-- The ids of purged circuits, kept for good (DESIGN I1): purging a deleted circuit's row must not
-- forget that its id was deleted, or a later create with the same id would publish keys of C
-- again. One narrow row per purged circuit (about 100-150 bytes with its index entry); the sweep
-- writes it in the statement that purges the row.
CREATE TABLE retired_circuits (
  id          uuid PRIMARY KEY,
  worker      text NOT NULL,
  deleted_at  timestamptz NOT NULL,
  purged_at   timestamptz NOT NULL DEFAULT now()
);

-- Creation refuses a retired id in a trigger after the insert rather than in a condition of the
-- insert: a create racing the purge of the same id waits for the purge's delete of the old row
-- and then goes through, so a condition evaluated before that wait misses the retired row. The
-- trigger runs after it, and its query (a volatile function under READ COMMITTED) takes a fresh
-- snapshot that sees the committed purge.
CREATE FUNCTION circuits_refuse_retired() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM retired_circuits WHERE id = NEW.id) THEN
    RAISE EXCEPTION 'circuit % was deleted; ids are never reused', NEW.id
      USING ERRCODE = 'unique_violation', CONSTRAINT = 'retired_circuits_pkey', TABLE = 'circuits';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER circuits_refuse_retired AFTER INSERT ON circuits
  FOR EACH ROW EXECUTE FUNCTION circuits_refuse_retired();
