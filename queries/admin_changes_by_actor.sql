-- name: admin_changes_by_actor
-- description: Admin changes (admin_audit_events) per actor: how many, how many failed (status 400 or more), which zones, methods and entity types, first and last.
-- param: limit = 50 (default)
-- Each change once (unique_admin_events), whichever shapes of the table were given. A
-- row without an actor (the coordinator writes none) counts under actor_id NULL. zones
-- lists '(global)' for the chain of changes without a zone.
SELECT
    actor_id,
    list(DISTINCT actor_name ORDER BY actor_name) FILTER (WHERE actor_name IS NOT NULL)
        AS actor_names,
    count(*) AS changes,
    count(*) FILTER (WHERE status_code >= 400) AS failed,
    list(DISTINCT coalesce(zone_id, '(global)') ORDER BY coalesce(zone_id, '(global)'))
        AS zones,
    list(DISTINCT upper(method) ORDER BY upper(method)) FILTER (WHERE method IS NOT NULL)
        AS methods,
    list(DISTINCT entity_type ORDER BY entity_type) FILTER (WHERE entity_type IS NOT NULL)
        AS entity_types,
    min(occurred_at) AS first_change,
    max(occurred_at) AS last_change
FROM unique_admin_events
GROUP BY actor_id
ORDER BY changes DESC, actor_id NULLS LAST
LIMIT CAST($limit AS BIGINT)
