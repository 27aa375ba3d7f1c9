-- Route changes waiting for a circuit's lock. A writer that has to queue records its change here;
-- the lock holder applies the changes queued behind it in its own fenced statement (one
-- generation each, in queue order) and tells the waiters in the same etcd transaction that
-- releases the lock. The row is where a waiter and a holder meet: a waiter that gives up withdraws
-- it (pending -> withdrawn) and a holder claims it (pending -> applied), never both. Purged by the
-- sweep once older than any writer can live.
CREATE TABLE route_intents (
  intent_id   uuid PRIMARY KEY,
  circuit_id  uuid NOT NULL REFERENCES circuits (id) ON DELETE CASCADE,
  routes      jsonb NOT NULL,
  status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'withdrawn')),
  generation  bigint,
  created_at  timestamptz NOT NULL DEFAULT now(),
  decided_at  timestamptz,
  CHECK ((status = 'applied') = (generation IS NOT NULL))
);
CREATE INDEX route_intents_created_at ON route_intents (created_at);
CREATE INDEX route_intents_circuit ON route_intents (circuit_id);
