-- Break-glass events are evidence of emergency access: an UPDATE could
-- extend an access window without a trace, so the table rejects UPDATE,
-- DELETE and TRUNCATE for every role, as audit_events does.
CREATE FUNCTION break_glass_events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'break_glass_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Break-glass events are never changed or deleted.';
END;
$$;

CREATE TRIGGER break_glass_events_reject_update_delete
    BEFORE UPDATE OR DELETE ON break_glass_events
    FOR EACH ROW EXECUTE FUNCTION break_glass_events_reject_change();
CREATE TRIGGER break_glass_events_reject_truncate
    BEFORE TRUNCATE ON break_glass_events
    FOR EACH STATEMENT EXECUTE FUNCTION break_glass_events_reject_change();
