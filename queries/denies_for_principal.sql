-- name: denies_for_principal
-- description: Every deny for one application (metadata application_id, else principal_id), oldest first.
-- param: principal_id = app-0010
-- The seed's recipe: jq 'select(.decision == "deny" and .metadata.principal_id == "...")'.
SELECT
    occurred_at,
    zone_id,
    chain_seq,
    request_id,
    event_type,
    lower(decision) AS decision,
    policy_set_version_id,
    TRY_CAST(determining_policies_json AS JSON) AS determining_policies,
    TRY_CAST(diagnostics_json AS JSON) AS diagnostics,
    id
FROM unique_events
WHERE lower(decision) = 'deny'
  AND coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))) = $principal_id
  -- A cheap, exact prefilter: jsonb text holds a string verbatim unless it has a
  -- character jsonb escapes (", \, control characters).
  AND (contains(metadata_json, $principal_id)
       OR regexp_matches($principal_id, '["\\\x00-\x1f]'))
ORDER BY occurred_at, zone_id, chain_seq, id
