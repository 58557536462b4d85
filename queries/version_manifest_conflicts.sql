-- name: version_manifest_conflicts
-- description: Policy versions seen with more than one manifest_sha (the same version id evaluating different policy content).
-- One row per (version, manifest); a NULL manifest_sha counts as a value of its own.
WITH per_manifest AS (
    SELECT
        policy_set_version_id,
        manifest_sha,
        list(DISTINCT policy_set_id ORDER BY policy_set_id) AS policy_set_ids,
        count(*) AS events,
        min(occurred_at) AS first_seen,
        max(occurred_at) AS last_seen,
        list(DISTINCT zone_id ORDER BY zone_id) AS zones
    FROM unique_events
    WHERE policy_set_version_id IS NOT NULL
    GROUP BY policy_set_version_id, manifest_sha
)
SELECT
    policy_set_version_id,
    manifest_sha,
    count(*) OVER (PARTITION BY policy_set_version_id) AS manifests,
    policy_set_ids,
    events,
    first_seen,
    last_seen,
    zones
FROM per_manifest
QUALIFY count(*) OVER (PARTITION BY policy_set_version_id) > 1
ORDER BY policy_set_version_id, first_seen, manifest_sha NULLS FIRST
