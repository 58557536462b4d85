-- name: deciding_policy_version
-- description: Per zone, the policy versions (and manifests) that took decisions, newest first; current marks the one behind the zone's latest decision.
-- The seed's recipe: jq '{policy_set_id, policy_set_version_id, manifest_sha}' | sort | uniq -c.
WITH decided AS (
    SELECT *
    FROM unique_events
    WHERE lower(decision) IN ('allow', 'deny', 'partial')
),
latest AS (
    SELECT
        zone_id,
        arg_max(struct_pack(policy_set_id, policy_set_version_id, manifest_sha), occurred_at)
            AS current_version
    FROM decided
    GROUP BY zone_id
)
SELECT
    d.zone_id,
    d.policy_set_id,
    d.policy_set_version_id,
    d.manifest_sha,
    struct_pack(d.policy_set_id, d.policy_set_version_id, d.manifest_sha)
        IS NOT DISTINCT FROM l.current_version AS current,
    count(*) AS decisions,
    count(*) FILTER (WHERE lower(d.decision) = 'allow') AS allows,
    count(*) FILTER (WHERE lower(d.decision) = 'deny') AS denies,
    count(*) FILTER (WHERE lower(d.decision) = 'partial') AS partials,
    min(d.occurred_at) AS first_seen,
    max(d.occurred_at) AS last_seen
FROM decided d
JOIN latest l ON l.zone_id IS NOT DISTINCT FROM d.zone_id
GROUP BY d.zone_id, d.policy_set_id, d.policy_set_version_id, d.manifest_sha, l.current_version
ORDER BY d.zone_id, last_seen DESC, d.policy_set_version_id, d.manifest_sha
