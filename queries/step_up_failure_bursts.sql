-- name: step_up_failure_bursts
-- description: Bursts of failed step-ups (challenge_invalid, challenge_cooldown) per principal: at least min_failures, each within window_seconds of the previous.
-- param: window_seconds = 300 (default)
-- param: min_failures = 3 (default)
-- A burst is a run of one principal's failures with no gap longer than window_seconds
-- (gaps and islands); principal_id is metadata application_id, else principal_id, NULL when absent.
WITH failures AS (
    SELECT
        coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), TRY(json_extract_string(metadata_json, '$.principal_id'))) AS principal_id,
        zone_id,
        id,
        request_id,
        event_type,
        occurred_at
    FROM unique_events
    WHERE event_type IN ('challenge_invalid', 'challenge_cooldown')
),
marked AS (
    SELECT
        *,
        CASE
            WHEN lag(occurred_at) OVER w IS NULL THEN 1
            WHEN epoch_us(occurred_at) - epoch_us(lag(occurred_at) OVER w)
                > CAST($window_seconds AS DOUBLE) * 1000000 THEN 1
            ELSE 0
        END AS starts_burst
    FROM failures
    WINDOW w AS (PARTITION BY principal_id ORDER BY occurred_at, zone_id, id)
),
numbered AS (
    SELECT
        *,
        sum(starts_burst) OVER (
            PARTITION BY principal_id ORDER BY occurred_at, zone_id, id
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS burst
    FROM marked
)
SELECT
    principal_id,
    min(occurred_at) AS burst_start,
    max(occurred_at) AS burst_end,
    (epoch_us(max(occurred_at)) - epoch_us(min(occurred_at))) / 1000000 AS span_seconds,
    count(*) AS failures,
    count(*) FILTER (WHERE event_type = 'challenge_invalid') AS challenge_invalid,
    count(*) FILTER (WHERE event_type = 'challenge_cooldown') AS challenge_cooldown,
    list(DISTINCT zone_id ORDER BY zone_id) AS zones,
    list(request_id ORDER BY occurred_at, zone_id, id) AS request_ids
FROM numbered
GROUP BY principal_id, burst
HAVING count(*) >= CAST($min_failures AS BIGINT)
ORDER BY failures DESC, burst_start, principal_id NULLS LAST
