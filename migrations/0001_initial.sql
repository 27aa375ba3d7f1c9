-- circuitry's initial schema. The database is the source of truth; etcd holds a rendering of it.

CREATE TABLE workers (
  authority       text PRIMARY KEY CHECK (authority ~ '^[a-z0-9-]{1,63}$'),
  hostname        text NOT NULL,
  wildcard_domain text,
  tls             boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE circuits (
  id                 uuid PRIMARY KEY,
  worker             text NOT NULL REFERENCES workers (authority),
  protocol           text NOT NULL CHECK (protocol IN ('http', 'tcp')),
  app_mode           text NOT NULL CHECK (app_mode IN ('inference', 'interactive')),
  frontend_mode      text NOT NULL CHECK (frontend_mode IN ('port', 'wildcard')),
  frontend_port      integer CHECK (frontend_port BETWEEN 1 AND 65535),
  frontend_subdomain text,
  allowed_client_ips text[] NOT NULL DEFAULT '{}',
  -- Health-check settings; all NULL means probing is disabled for this circuit.
  hc_path                  text,
  hc_interval_seconds      integer,
  hc_timeout_ms            integer,
  hc_expected_status       integer,
  hc_unhealthy_threshold   integer,
  hc_healthy_threshold     integer,
  hc_initial_delay_seconds integer,
  -- Bumped on every change; etcd's per-circuit meta records the generation last applied.
  generation         bigint NOT NULL DEFAULT 1,
  deleted_at         timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CHECK ((frontend_mode = 'port' AND frontend_port IS NOT NULL AND frontend_subdomain IS NULL)
      OR (frontend_mode = 'wildcard' AND frontend_subdomain IS NOT NULL AND frontend_port IS NULL)),
  CHECK ((hc_path IS NULL) = (hc_interval_seconds IS NULL)
     AND (hc_path IS NULL) = (hc_timeout_ms IS NULL)
     AND (hc_path IS NULL) = (hc_expected_status IS NULL)
     AND (hc_path IS NULL) = (hc_unhealthy_threshold IS NULL)
     AND (hc_path IS NULL) = (hc_healthy_threshold IS NULL)
     AND (hc_path IS NULL) = (hc_initial_delay_seconds IS NULL))
);

-- One live frontend per worker: a port (any protocol: both use entry point portproxy_<port>)
-- or a subdomain. Deleted circuits free their frontend.
CREATE UNIQUE INDEX circuits_live_port ON circuits (worker, frontend_port)
  WHERE deleted_at IS NULL AND frontend_mode = 'port';
CREATE UNIQUE INDEX circuits_live_subdomain ON circuits (worker, frontend_subdomain)
  WHERE deleted_at IS NULL AND frontend_mode = 'wildcard';
CREATE INDEX circuits_created ON circuits (created_at, id);

CREATE TABLE routes (
  circuit_id            uuid NOT NULL REFERENCES circuits (id) ON DELETE CASCADE,
  route_id              uuid NOT NULL,
  session_id            uuid NOT NULL,
  host                  text NOT NULL,
  port                  integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
  traffic_ratio         double precision NOT NULL CHECK (traffic_ratio > 0 AND traffic_ratio <= 1),
  position              integer NOT NULL,
  health_status         text NOT NULL DEFAULT 'unknown' CHECK (health_status IN ('unknown', 'healthy', 'unhealthy')),
  consecutive_successes integer NOT NULL DEFAULT 0,
  consecutive_failures  integer NOT NULL DEFAULT 0,
  last_checked_at       timestamptz,
  last_error            text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (circuit_id, route_id)
);
