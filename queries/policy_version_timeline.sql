-- name: policy_version_timeline
-- description: Every policy version seen: first and last seen, allows, denies and partials, zones and manifests, in order of first appearance.
SELECT
    policy_set_id,
    policy_set_version_id,
    min(occurred_at) AS first_seen,
    max(occurred_at) AS last_seen,
    count(*) AS events,
    count(*) FILTER (WHERE lower(decision) = 'allow') AS allows,
    count(*) FILTER (WHERE lower(decision) = 'deny') AS denies,
    count(*) FILTER (WHERE lower(decision) = 'partial') AS partials,
    count(DISTINCT manifest_sha) AS manifests,
    list(DISTINCT zone_id ORDER BY zone_id) AS zones
FROM unique_events
GROUP BY policy_set_id, policy_set_version_id
ORDER BY first_seen, policy_set_id, policy_set_version_id
