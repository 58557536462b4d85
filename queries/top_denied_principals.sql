-- name: top_denied_principals
-- description: The principals (metadata principal_id) with the most denies, with their deny rate.
-- param: limit = 10 (default)
-- A NULL principal_id groups the denies whose metadata names no principal.
SELECT
    TRY(json_extract_string(metadata_json, '$.principal_id')) AS principal_id,
    count(*) FILTER (WHERE lower(decision) = 'deny') AS denies,
    count(*) AS events,
    round(count(*) FILTER (WHERE lower(decision) = 'deny') / count(*), 4) AS deny_rate,
    count(DISTINCT request_id) FILTER (WHERE lower(decision) = 'deny') AS denied_requests,
    list(DISTINCT event_type ORDER BY event_type) FILTER (WHERE lower(decision) = 'deny')
        AS denied_event_types,
    list(DISTINCT zone_id ORDER BY zone_id) FILTER (WHERE lower(decision) = 'deny') AS zones,
    min(occurred_at) FILTER (WHERE lower(decision) = 'deny') AS first_deny,
    max(occurred_at) FILTER (WHERE lower(decision) = 'deny') AS last_deny
FROM unique_events
GROUP BY 1
HAVING count(*) FILTER (WHERE lower(decision) = 'deny') > 0
ORDER BY denies DESC, principal_id NULLS LAST
LIMIT CAST($limit AS BIGINT)
