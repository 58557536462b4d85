-- name: jti_collisions
-- description: JTI collisions (event_type jti_collision): a token presented twice, i.e. replay attempts.
-- The seed's recipe: jq 'select(.event_type == "jti_collision")'.
SELECT
    occurred_at,
    zone_id,
    chain_seq,
    request_id,
    lower(decision) AS decision,
    coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))) AS principal_id,
    TRY(json_extract_string(metadata_json, '$.session_id')) AS session_id,
    TRY(json_extract_string(metadata_json, '$.agent_session_id')) AS agent_session_id,
    TRY_CAST(diagnostics_json AS JSON) AS diagnostics,
    TRY_CAST(metadata_json AS JSON) AS metadata,
    id
FROM unique_events
WHERE event_type = 'jti_collision'
ORDER BY occurred_at, zone_id, chain_seq, id
