-- Durable unloads, frontends held until their keys are gone, and fences bound to etcd's history.

-- A DELETE is recorded here before it is answered 202; sweeps complete unloads still pending
-- after UNLOAD_GRACE_SECONDS (the CircuitUnloadRequested event is only the fast path).
ALTER TABLE circuits ADD COLUMN unload_requested_at timestamptz;
CREATE INDEX circuits_unload_pending ON circuits (unload_requested_at)
  WHERE deleted_at IS NULL AND unload_requested_at IS NOT NULL;

-- A deleted circuit keeps its frontend (port or subdomain) until etcd is confirmed to hold none
-- of its keys: until then its router, with the same rule and entry point, may still be live.
-- Deletions made before this migration count as released (they were free under the old rule;
-- the sweep still removes any key named after them).
ALTER TABLE circuits ADD COLUMN keys_removed_at timestamptz;
UPDATE circuits SET keys_removed_at = deleted_at WHERE deleted_at IS NOT NULL;
DROP INDEX circuits_live_port;
DROP INDEX circuits_live_subdomain;
CREATE UNIQUE INDEX circuits_frontend_port ON circuits (worker, frontend_port)
  WHERE frontend_mode = 'port' AND keys_removed_at IS NULL;
CREATE UNIQUE INDEX circuits_frontend_subdomain ON circuits (worker, frontend_subdomain)
  WHERE frontend_mode = 'wildcard' AND keys_removed_at IS NULL;
CREATE INDEX circuits_unreleased ON circuits (id) WHERE deleted_at IS NOT NULL AND keys_removed_at IS NULL;
CREATE INDEX circuits_deleted_at ON circuits (deleted_at) WHERE deleted_at IS NOT NULL;

-- Fences are (epoch, lock create revision), compared in that order. A restored or rebuilt etcd
-- starts a new epoch, so its (possibly lower) revisions still win over fences of the old history.
ALTER TABLE circuits ADD COLUMN lock_epoch bigint NOT NULL DEFAULT 0;
CREATE TABLE etcd_epochs (
  epoch            bigint PRIMARY KEY CHECK (epoch >= 1),
  cluster_id       text NOT NULL,
  marker           text NOT NULL,
  started_revision bigint NOT NULL,
  reason           text NOT NULL,
  started_at       timestamptz NOT NULL DEFAULT now()
);

-- POST /v2/circuits is idempotent: a retry of the request that created a circuit (same id, same
-- body) answers the stored circuit, even after its routes changed since.
ALTER TABLE circuits ADD COLUMN create_digest text;
