-- name: denied_then_allowed
-- description: Requests with a deny followed later by an allow (a retry, a step-up, or a bypass), with the sequence of events.
-- Grouped by request_id across zones; events without a request_id are left out.
-- The requests are found first, by their times alone; the lists and the sequence are
-- made for them only (ordered per request, they were most of the work for every one).
WITH requests AS (
    SELECT request_id
    FROM unique_events
    WHERE request_id IS NOT NULL AND request_id <> ''
    GROUP BY request_id
    HAVING min(occurred_at) FILTER (WHERE lower(decision) = 'deny')
         < max(occurred_at) FILTER (WHERE lower(decision) = 'allow')
)
SELECT
    request_id,
    list(DISTINCT coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id')))
        ORDER BY coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))))
        FILTER (WHERE coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))) IS NOT NULL)
        AS principals,
    list(DISTINCT zone_id ORDER BY zone_id) AS zones,
    min(occurred_at) FILTER (WHERE lower(decision) = 'deny') AS first_deny,
    max(occurred_at) FILTER (WHERE lower(decision) = 'allow') AS last_allow,
    count(*) AS events,
    string_agg(event_type || ':' || coalesce(lower(decision), '?'), ' > '
        ORDER BY occurred_at, zone_id, chain_seq, id) AS sequence
FROM unique_events
SEMI JOIN requests USING (request_id)
GROUP BY request_id
ORDER BY first_deny, request_id
