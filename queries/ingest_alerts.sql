-- name: ingest_alerts
-- description: Tamper signals the audit service recorded at ingest (audit_ingest_alerts), with the event each one names.
SELECT
    a.observed_at,
    a.kind,
    a.zone_id,
    a.event_id,
    a.detail,
    e.event_type,
    e.occurred_at,
    e.chain_seq,
    e.request_id,
    e.id IS NOT NULL AS event_in_export,
    a.source_file AS alert_source
FROM (
    -- each alert once when several dumps of the table hold it (as caracal_forensics.alerts)
    SELECT * FROM alerts
    QUALIFY dense_rank() OVER (PARTITION BY id, event_id, zone_id, kind, detail, observed_at
                               ORDER BY source_file NULLS LAST) = 1
) a
LEFT JOIN unique_events e
    ON e.id = a.event_id AND (a.zone_id IS NULL OR e.zone_id = a.zone_id)
ORDER BY a.observed_at, a.id, a.source_file
