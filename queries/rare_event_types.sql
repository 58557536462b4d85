-- name: rare_event_types
-- description: Event types that make up at most max_share of all events (0.05 = 5 %), with where and when, rarest first.
-- param: max_share = 0.05 (default)
-- The rare types are found first, by their counts alone: their sample ids are a sorted
-- list of a type's every id, which for the common types was most of the work.
WITH total AS (
    SELECT count(*) AS events FROM unique_events
), rare AS (
    SELECT event_type
    FROM unique_events
    GROUP BY event_type
    HAVING count(*) <= CAST($max_share AS DOUBLE) * (SELECT events FROM total)
)
SELECT
    e.event_type,
    count(*) AS events,
    round(count(*) / (SELECT events FROM total), 6) AS share,
    count(*) FILTER (WHERE lower(decision) = 'deny') AS denies,
    min(occurred_at) AS first_seen,
    max(occurred_at) AS last_seen,
    list(DISTINCT zone_id ORDER BY zone_id) AS zones,
    list(id ORDER BY occurred_at, id)[1:10] AS sample_ids
FROM unique_events e
SEMI JOIN rare r ON e.event_type IS NOT DISTINCT FROM r.event_type
GROUP BY e.event_type
ORDER BY events, event_type
