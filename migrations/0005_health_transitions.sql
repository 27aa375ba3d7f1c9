-- The recent status changes of routes (what RouteHealthChanged carries), for operators: written in
-- the same statement as the change, purged after HEALTH_TRANSITION_RETENTION_DAYS by the sweep.
CREATE TABLE health_transitions (
  id          bigserial PRIMARY KEY,
  circuit_id  uuid NOT NULL,
  route_id    uuid NOT NULL,
  from_status text NOT NULL,
  to_status   text NOT NULL,
  generation  bigint NOT NULL,
  last_error  text,
  at          timestamptz NOT NULL
);
CREATE INDEX health_transitions_circuit ON health_transitions (circuit_id, id);
CREATE INDEX health_transitions_at ON health_transitions (at);
