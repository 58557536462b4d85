-- name: non_complete_evaluations
-- description: Events whose evaluation_status is not complete (upstream_error, anomaly, empty, ...), oldest first.
-- Rows from shapes that do not carry evaluation_status at all (absent_fields) are left out.
SELECT
    occurred_at,
    zone_id,
    chain_seq,
    request_id,
    event_type,
    lower(decision) AS decision,
    evaluation_status,
    coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))) AS principal_id,
    policy_set_version_id,
    TRY_CAST(diagnostics_json AS JSON) AS diagnostics,
    id
FROM unique_events
WHERE lower(coalesce(evaluation_status, '')) <> 'complete'
  AND NOT list_contains(string_split(coalesce(absent_fields, ''), ','), 'evaluation_status')
ORDER BY occurred_at, zone_id, chain_seq, id
