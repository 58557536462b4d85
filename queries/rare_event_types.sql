-- name: rare_event_types
-- description: Event types that make up at most max_share of all events (0.05 = 5 %), with where and when, rarest first.
-- param: max_share = 0.05 (default)
SELECT
    event_type,
    count(*) AS events,
    round(count(*) / (SELECT count(*) FROM unique_events), 6) AS share,
    count(*) FILTER (WHERE lower(decision) = 'deny') AS denies,
    min(occurred_at) AS first_seen,
    max(occurred_at) AS last_seen,
    list(DISTINCT zone_id ORDER BY zone_id) AS zones,
    list(id ORDER BY occurred_at, id)[1:10] AS sample_ids
FROM unique_events
GROUP BY event_type
HAVING count(*) <= CAST($max_share AS DOUBLE) * (SELECT count(*) FROM unique_events)
ORDER BY events, event_type
