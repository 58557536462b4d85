-- name: top_denied_principals
-- description: The principals (metadata application_id, else principal_id) with the most denies, with their deny rate.
-- param: limit = 10 (default)
-- A NULL principal_id groups the denies whose metadata names no principal; principal_key
-- says which metadata key named it (application_id in current releases, principal_id in
-- the older guide's), both when they differ across events.
WITH parsed AS (
    SELECT
        *,
        -- both keys from one parse of the metadata
        TRY(json_extract_string(metadata_json, ['$.application_id', '$.principal_id']))
            AS principal_ids
    FROM unique_events
),
keyed AS (
    SELECT
        *,
        principal_ids[1] AS application_id,
        principal_ids[2] AS older_principal_id
    FROM parsed
)
SELECT
    coalesce(application_id, older_principal_id) AS principal_id,
    count(*) FILTER (WHERE lower(decision) = 'deny') AS denies,
    count(*) AS events,
    round(count(*) FILTER (WHERE lower(decision) = 'deny') / count(*), 4) AS deny_rate,
    count(DISTINCT request_id) FILTER (WHERE lower(decision) = 'deny') AS denied_requests,
    list(DISTINCT event_type ORDER BY event_type) FILTER (WHERE lower(decision) = 'deny')
        AS denied_event_types,
    list(DISTINCT zone_id ORDER BY zone_id) FILTER (WHERE lower(decision) = 'deny') AS zones,
    min(occurred_at) FILTER (WHERE lower(decision) = 'deny') AS first_deny,
    max(occurred_at) FILTER (WHERE lower(decision) = 'deny') AS last_deny,
    array_to_string(list_sort(list(DISTINCT CASE
        WHEN application_id IS NOT NULL THEN 'application_id'
        WHEN older_principal_id IS NOT NULL THEN 'principal_id'
    END)), ',') AS principal_key
FROM keyed
GROUP BY 1
HAVING count(*) FILTER (WHERE lower(decision) = 'deny') > 0
ORDER BY denies DESC, principal_id NULLS LAST
LIMIT CAST($limit AS BIGINT)
