ALTER TABLE master_keys DROP COLUMN retired_at;
