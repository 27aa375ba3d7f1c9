-- scheduled-health: when each circuit is next due for probing.
--
-- A sweep claims due circuits with one atomic UPDATE ... WHERE id IN (SELECT ... FOR UPDATE
-- SKIP LOCKED LIMIT n) that pushes next_probe_at one interval forward. The claim commits at
-- once, so overlapping or concurrent sweeps (a late invocation, a retried event, several
-- processes) never probe the same circuit twice in one interval, and sweeps can be scaled out.
-- New circuits default to "due now" (probing starts at the next sweep; the route's initial
-- delay keeps early failures from counting).
ALTER TABLE circuits ADD COLUMN next_probe_at timestamptz NOT NULL DEFAULT now();

-- Only live circuits with health checking are ever claimed.
CREATE INDEX circuits_next_probe ON circuits (next_probe_at)
  WHERE deleted_at IS NULL AND hc_path IS NOT NULL;

-- The drift sweep pages through live circuits by id.
CREATE INDEX circuits_live_id ON circuits (id) WHERE deleted_at IS NULL;
