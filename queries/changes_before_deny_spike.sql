-- name: changes_before_deny_spike
-- description: Where the denies of a zone jump (a window with at least min_denies denies and ratio times the window before), the admin changes made in the lookback minutes before the first of them.
-- param: window_minutes = 5 (default)
-- param: min_denies = 5 (default)
-- param: ratio = 2 (default)
-- param: lookback_minutes = 60 (default)
-- One row per (spike, change), oldest spike first, the changes nearest to it first. A
-- spike is the first window of a run of such windows (its onset). The changes are those
-- of the zone's admin chain and of the global chain that name the zone (as entity_id or
-- a segment of the path); failed attempts are listed too (status_code says so).
WITH buckets AS (
    SELECT
        zone_id,
        time_bucket(to_minutes(CAST($window_minutes AS BIGINT)), occurred_at) AS bucket,
        count(*) AS denies,
        min(occurred_at) AS first_deny
    FROM unique_events
    WHERE lower(decision) = 'deny'
    GROUP BY ALL
),
compared AS (
    SELECT
        b.*,
        coalesce(p.denies, 0) AS previous_denies,
        b.denies >= CAST($min_denies AS BIGINT)
            AND b.denies >= CAST($ratio AS DOUBLE) * coalesce(p.denies, 0) AS spike
    FROM buckets b
    LEFT JOIN buckets p
        ON p.zone_id = b.zone_id
        AND p.bucket = b.bucket - to_minutes(CAST($window_minutes AS BIGINT))
),
onsets AS (
    SELECT c.*
    FROM compared c
    LEFT JOIN compared p
        ON p.zone_id = c.zone_id
        AND p.bucket = c.bucket - to_minutes(CAST($window_minutes AS BIGINT))
    WHERE c.spike AND NOT coalesce(p.spike, false)
)
SELECT
    o.zone_id,
    o.first_deny AS spike_at,
    o.denies AS spike_denies,
    o.previous_denies,
    a.occurred_at AS changed_at,
    round(epoch(o.first_deny - a.occurred_at) / 60.0, 2) AS minutes_before,
    a.actor_id,
    a.actor_name,
    a.action,
    a.status_code,
    a.entity_type,
    a.entity_id,
    a.change_kind,
    coalesce(a.zone_id, '(global)') AS chain,
    a.chain_seq
FROM onsets o
JOIN unique_admin_events a
    ON (a.zone_id = o.zone_id
        OR (a.zone_id IS NULL AND (a.entity_id = o.zone_id
            OR list_contains(string_split(coalesce(a.path, ''), '/'), o.zone_id))))
    AND a.occurred_at <= o.first_deny
    AND a.occurred_at >= o.first_deny - to_minutes(CAST($lookback_minutes AS BIGINT))
ORDER BY o.first_deny, o.zone_id, a.occurred_at DESC, a.chain_seq DESC
