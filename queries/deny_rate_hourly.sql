-- name: deny_rate_hourly
-- description: Events, denies and deny rate per hour (UTC, by occurred_at) and zone.
SELECT
    date_trunc('hour', occurred_at) AS hour,
    zone_id,
    count(*) AS events,
    count(*) FILTER (WHERE lower(decision) = 'deny') AS denies,
    round(count(*) FILTER (WHERE lower(decision) = 'deny') / count(*), 4) AS deny_rate
FROM unique_events
GROUP BY ALL
ORDER BY hour, zone_id
