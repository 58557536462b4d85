-- name: principal_activity
-- description: Everything one principal (metadata application_id, else principal_id) did: per event type and decision, counts, requests and time span.
-- param: principal_id = app-0010
SELECT
    event_type,
    lower(decision) AS decision,
    count(*) AS events,
    count(DISTINCT request_id) AS requests,
    list(DISTINCT zone_id ORDER BY zone_id) AS zones,
    min(occurred_at) AS first_seen,
    max(occurred_at) AS last_seen
FROM unique_events
WHERE coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))) = $principal_id
  -- A cheap, exact prefilter: jsonb text holds a string verbatim unless it has a
  -- character jsonb escapes (", \, control characters).
  AND (contains(metadata_json, $principal_id)
       OR regexp_matches($principal_id, '["\\\x00-\x1f]'))
GROUP BY ALL
ORDER BY first_seen, event_type, decision
