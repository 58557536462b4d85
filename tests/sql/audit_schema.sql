-- The upstream Caracal audit schema (FORMAT.md sections 1 and 2), for tests that need
-- a real PostgreSQL as the reference. audit_append() computes the chain in SQL.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE audit_events (
    id                          text        NOT NULL,
    zone_id                     text        NOT NULL,
    event_type                  text        NOT NULL,
    request_id                  text,
    decision                    text,
    policy_set_id               text,
    policy_set_version_id       text,
    manifest_sha                text,
    evaluation_status           text,
    determining_policies_json   jsonb,
    diagnostics_json            jsonb,
    metadata_json               jsonb,
    occurred_at                 timestamptz NOT NULL,
    ingested_at                 timestamptz NOT NULL DEFAULT now(),
    content_sha256              text        NOT NULL,
    prev_content_sha256         text,
    chain_hmac                  text        NOT NULL,
    chain_seq                   bigint      NOT NULL,
    ingest_signature            text,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Monthly partitions 2026-01 .. 2027-12, plus a DEFAULT partition for anything else.
DO $$
DECLARE
    m date;
BEGIN
    FOR m IN SELECT generate_series(date '2026-01-01', date '2027-12-01', interval '1 month')::date
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
            'audit_events_' || to_char(m, 'YYYY_MM'),
            to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END
$$;
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

CREATE INDEX audit_events_zone_seq_idx ON audit_events (zone_id, chain_seq);

CREATE TABLE audit_ingest_alerts (
    id          bigserial PRIMARY KEY,
    event_id    text,
    zone_id     text,
    kind        text,
    detail      text,
    observed_at timestamptz
);

-- Append one event to its zone's chain (FORMAT.md section 2) and return the stored row.
-- p_key is the decoded AUDIT_HMAC_KEY: decode('<hex>', 'hex').
CREATE FUNCTION audit_append(
    p_key                   bytea,
    p_id                    text,
    p_zone                  text,
    p_event_type            text,
    p_request_id            text,
    p_decision              text,
    p_policy_set_id         text,
    p_policy_set_version_id text,
    p_manifest_sha          text,
    p_evaluation_status     text,
    p_determining           jsonb,
    p_diagnostics           jsonb,
    p_metadata              jsonb,
    p_occurred_at           timestamptz,
    p_ingested_at           timestamptz
) RETURNS audit_events
LANGUAGE plpgsql AS $$
DECLARE
    us       constant text := chr(31);
    v_prev   text;
    v_seq    bigint;
    v_nanos  text;
    v_content text;
    v_row    audit_events;
BEGIN
    IF p_key IS NULL OR length(p_key) < 32 THEN
        RAISE EXCEPTION 'audit_append: the HMAC key must be at least 32 bytes';
    END IF;

    -- Serialise appends per zone for the rest of the transaction (rows cannot be locked
    -- before the zone's first row exists, so lock the zone itself).
    PERFORM pg_advisory_xact_lock(hashtextextended('audit_chain:' || p_zone, 0));

    SELECT e.content_sha256, e.chain_seq INTO v_prev, v_seq
      FROM audit_events e
     WHERE e.zone_id = p_zone
     ORDER BY e.chain_seq DESC
     LIMIT 1;
    v_seq := coalesce(v_seq, 0) + 1;

    -- extract(epoch ...) is an exact numeric since PostgreSQL 14: no float rounding.
    v_nanos := ((extract(epoch FROM p_occurred_at) * 1000000)::bigint * 1000)::text;

    v_content := encode(digest(convert_to(
           coalesce(p_id, '')                    || us
        || coalesce(p_zone, '')                  || us
        || coalesce(p_event_type, '')            || us
        || coalesce(p_request_id, '')            || us
        || coalesce(p_decision, '')              || us
        || coalesce(p_policy_set_id, '')         || us
        || coalesce(p_policy_set_version_id, '') || us
        || coalesce(p_manifest_sha, '')          || us
        || coalesce(p_evaluation_status, '')     || us
        || coalesce(p_determining::text, 'null') || us
        || coalesce(p_diagnostics::text, 'null') || us
        || coalesce(p_metadata::text, 'null')    || us
        || v_nanos, 'UTF8'), 'sha256'), 'hex');

    INSERT INTO audit_events (
        id, zone_id, event_type, request_id, decision, policy_set_id,
        policy_set_version_id, manifest_sha, evaluation_status,
        determining_policies_json, diagnostics_json, metadata_json,
        occurred_at, ingested_at, content_sha256, prev_content_sha256, chain_hmac, chain_seq
    ) VALUES (
        p_id, p_zone, p_event_type, p_request_id, p_decision, p_policy_set_id,
        p_policy_set_version_id, p_manifest_sha, p_evaluation_status,
        p_determining, p_diagnostics, p_metadata,
        p_occurred_at, coalesce(p_ingested_at, now()), v_content, v_prev,
        encode(hmac(convert_to(v_content || '|' || coalesce(v_prev, ''), 'UTF8'),
                    p_key, 'sha256'), 'hex'),
        v_seq
    )
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
