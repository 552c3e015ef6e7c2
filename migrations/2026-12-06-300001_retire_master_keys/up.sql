-- A retired master key wraps no data key any more (`meditrustal keys
-- retire` checks that first). A server configured with it as the current
-- key refuses to start, so no new data is sealed under it.
ALTER TABLE master_keys ADD COLUMN retired_at timestamptz;
