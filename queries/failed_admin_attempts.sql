-- name: failed_admin_attempts
-- description: Admin requests refused (status_code at or above min_status) grouped by status code: how many, by whom, on what, first and last.
-- param: min_status = 400 (default)
-- A 403 is someone trying what their scope does not allow; a burst of them from one
-- actor is worth a look. actors are actor_name, else actor_id, else '(none)'.
SELECT
    status_code,
    count(*) AS attempts,
    list(DISTINCT coalesce(actor_name, actor_id, '(none)')
         ORDER BY coalesce(actor_name, actor_id, '(none)')) AS actors,
    list(DISTINCT coalesce(zone_id, '(global)') ORDER BY coalesce(zone_id, '(global)'))
        AS zones,
    list(DISTINCT action ORDER BY action) FILTER (WHERE action IS NOT NULL) AS actions,
    min(occurred_at) AS first_attempt,
    max(occurred_at) AS last_attempt
FROM unique_admin_events
WHERE status_code >= CAST($min_status AS INTEGER)
GROUP BY status_code
ORDER BY attempts DESC, status_code
